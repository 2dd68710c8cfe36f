-- wrk script: POST one JSON body (read from a file) on every request, and count the answers by
-- kind: 200s, 503s that carry Retry-After (admission control's refusal), and anything else.
-- Prints one line at the end: STATUS_JSON {"ok": .., "refused": .., "other": .., "other_codes": ".."}
--   wrk -t1 -c64 -d10s -s bench/wrk/count_status.lua http://127.0.0.1:3000/sample -- /tmp/body.json

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  wrk.headers["Content-Type"] = "application/json"
  f:close()
  ok, refused, other, other_codes = 0, 0, 0, ""
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 503 and (headers["retry-after"] or headers["Retry-After"]) then
    refused = refused + 1
  else
    other = other + 1
    if #other_codes < 200 then other_codes = other_codes .. status .. " " end
  end
end

function done(summary, latency, requests)
  local t_ok, t_refused, t_other, codes = 0, 0, 0, ""
  for _, thread in ipairs(threads) do
    t_ok = t_ok + thread:get("ok")
    t_refused = t_refused + thread:get("refused")
    t_other = t_other + thread:get("other")
    codes = codes .. thread:get("other_codes")
  end
  local e = summary.errors
  io.write(string.format(
    'STATUS_JSON {"ok": %d, "refused": %d, "other": %d, "other_codes": "%s", "requests": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, "p99_us": %d}\n',
    t_ok, t_refused, t_other, codes, summary.requests, e.connect, e.read, e.write, e.timeout,
    latency:percentile(99)))
end
