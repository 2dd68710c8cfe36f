-- wrk script: POST one JSON body (read from a file) on every request, and print a one-line JSON
-- summary at the end that bench/serve.py parses (wrk's own text output is for people).
--   wrk -t1 -c64 -d10s -s bench/wrk/post_json.lua http://127.0.0.1:3000/sample -- /tmp/body.json
-- Without a body file the requests stay GETs (e.g. /livez, the HTTP floor).

function init(args)
  if args[1] then
    local f = assert(io.open(args[1], "rb"))
    wrk.method = "POST"
    wrk.body = f:read("*a")
    wrk.headers["Content-Type"] = "application/json"
    f:close()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
