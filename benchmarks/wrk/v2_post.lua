-- wrk script for the serving benchmark: POSTs one fixed V2 inference body per connection, saves a few
-- response samples for the Python side to check (shape and values), and prints one RESULT line (JSON).
-- Arguments after `--`: BODY_FILE CONTENT_TYPE HEADER_LENGTH(or -) SAMPLE_DIR
-- Saving samples only for the first responses and then every 1009th keeps the per-response cost tiny.

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = args[2]
  if args[3] ~= "-" then
    wrk.headers["Inference-Header-Content-Length"] = args[3]
  end
  sample_dir = args[4]
  seen = 0
  saved = 0
end

function response(status, headers, body)
  seen = seen + 1
  if saved < 8 and (seen <= 3 or seen % 1009 == 0) then
    saved = saved + 1
    local f = io.open(sample_dir .. "/t" .. tid .. "_" .. seen, "wb")
    if f then
      f:write(tostring(status), "\n")
      for k, v in pairs(headers) do
        f:write(k, ": ", v, "\n")
      end
      f:write("\n", body)
      f:close()
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
