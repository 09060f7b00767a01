-- wrk script: POST one IRIS row to /score (or the body in WRK_BODY, of WRK_CONTENT_TYPE), and print a JSON
-- summary line the load benchmark parses.
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/json"
wrk.body = os.getenv("WRK_BODY") or
  '{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}'
if os.getenv("WRK_PATH") then wrk.path = os.getenv("WRK_PATH") end
if os.getenv("WRK_CLOSE") then wrk.headers["Connection"] = "close" end
if os.getenv("WRK_AUTH") then wrk.headers["Authorization"] = "Bearer " .. os.getenv("WRK_AUTH") end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d,"non_2xx":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"p999_us":%d,"max_us":%d,"mean_us":%.2f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.timeout,
    e.status, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
