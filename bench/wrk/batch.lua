-- Batch enqueue: POST /api/offline/queue/batch with BATCH (default 1000) operations per request.
local n = tonumber(os.getenv("OQ_BATCH") or "1000")
wrk.method = "POST"
wrk.path = "/api/offline/queue/batch"
wrk.headers["Content-Type"] = "application/json"
local ops = {}
for i = 1, n do
  ops[i] = '{"operation_type":"api_call","payload":{"endpoint":"/sink","data":{"i":' .. i ..
    ',"event":"metric","value":0.25,"source":"bench"}}}'
end
wrk.body = '{"operations":[' .. table.concat(ops, ",") .. ']}'

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d}\n', summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
