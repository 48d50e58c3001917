-- Batch enqueue: POST /api/offline/queue/batch with BATCH (default 1000) operations per request.
local n = tonumber(os.getenv("OQ_BATCH") or "1000")
wrk.method = "POST"
wrk.path = "/api/offline/queue/batch"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("OQ_PREFER") then wrk.headers["Prefer"] = os.getenv("OQ_PREFER") end
local ops = {}
for i = 1, n do
  ops[i] = '{"operation_type":"api_call","payload":{"endpoint":"/sink","data":{"i":' .. i ..
    ',"event":"metric","value":0.25,"source":"bench"}}}'
end
wrk.body = '{"operations":[' .. table.concat(ops, ",") .. ']}'

dofile(os.getenv("OQ_WRK_DIR") .. "/report.lua")
