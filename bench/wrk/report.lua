-- bench/wrk/report.lua - shared by the bench_server scenarios.
--
-- done() prints one machine-readable line that bench/bench_server parses:
--   WRKRESULT requests=N duration_us=N non2xx=N connect=N read=N write=N
--             timeout=N p50_us=N p90_us=N p99_us=N max_us=N
-- "requests" counts the responses wrk read before the duration ran out;
-- requests still in flight at that moment are not counted (at most one per
-- connection: wrk does not pipeline here).
--
-- load_payload(path) returns the bytes of a JSON payload file with its
-- leading whitespace and opening brace removed, so that a scenario can put
-- its own "title" in front: '{"title":"…",' .. rest.

function load_payload(path)
   local f = assert(io.open(path, "rb"), "cannot open payload " .. tostring(path))
   local s = f:read("*a")
   f:close()
   local rest = s:match("^%s*{(.*)$")
   assert(rest, "payload is not a JSON object: " .. path)
   -- drop the payload's own title: the scenario supplies one
   rest = rest:gsub('^%s*"title"%s*:%s*"[^"]*"%s*,?', "", 1)
   return rest
end

-- a JSON string literal's contents (the titles used here are plain ASCII)
function json_escape(s)
   return (s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end))
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "WRKRESULT requests=%d duration_us=%d non2xx=%d connect=%d read=%d write=%d " ..
      "timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write,
      e.timeout, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max))
end
