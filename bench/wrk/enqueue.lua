-- Single enqueue: POST /api/offline/queue with a 300-byte payload on every request.
wrk.method = "POST"
wrk.path = "/api/offline/queue"
wrk.headers["Content-Type"] = "application/json"
local payload = '{"endpoint":"/sink","data":{"user_id":"u-1042","event":"checkout.completed",' ..
  '"order":{"id":"ord-88213","total_cents":12999,"currency":"EUR","items":3},' ..
  '"source":"bench","note":"a typical small operation payload for the single enqueue workload"}}'
payload = payload .. string.rep(" ", 300 - #payload)
wrk.body = '{"operation_type":"api_call","priority":0,"payload":' .. payload .. '}'

dofile(os.getenv("OQ_WRK_DIR") .. "/report.lua")
