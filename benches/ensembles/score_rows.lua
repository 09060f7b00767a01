-- wrk script for benches/ensembles.py: POST one row per request to WRK_PATH, cycling through
-- the JSON bodies of WRK_BODIES (one a line, many different rows: the branch predictor must
-- not learn one row's path), each thread from its own starting line; prints the JSON summary
-- line benches/load.py's score.lua prints.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("WRK_PATH") then wrk.path = os.getenv("WRK_PATH") end

local bodies = {}
local next_body = 0
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(os.getenv("WRK_BODIES")) do bodies[#bodies + 1] = line end
  next_body = ((id or 0) * 7919) % #bodies
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end

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
