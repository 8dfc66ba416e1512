-- bench/ingest/post.lua - wrk script of bench/ingest: POST a different alert
-- per request. Arguments (after wrk's "--"): TEMPLATE PATH TAG.
-- In the template "__N__" becomes TAG-THREAD-COUNTER (the rule name, so no
-- request is a duplicate of another) and "__IP__" the last octet of an IP.
--
-- thread_id is a global on purpose: setup() sets it in each thread's Lua
-- state with thread:set(), and a `local` of the same name declared here would
-- hide that value from request() (every thread would then send the same
-- titles and half the requests would be deduplicated).
thread_id = 0
local next_thread = 0
local template, path, tag
local counter = 0

function setup(thread)
   next_thread = next_thread + 1
   thread:set("thread_id", next_thread)
end

function init(args)
   local f = assert(io.open(args[1], "rb"), "cannot open template " .. tostring(args[1]))
   template = f:read("*a")
   f:close()
   path = args[2]
   tag = args[3] or "w"
end

function request()
   counter = counter + 1
   local n = tag .. "-" .. tostring(thread_id) .. "-" .. tostring(counter)
   local body = template:gsub("__N__", n):gsub("__IP__", tostring(counter % 250 + 1))
   -- wrk.format() takes either the headers given here or wrk.headers (the
   -- -H options, e.g. the API key), not both: merge them.
   local headers = {["Content-Type"] = "application/json"}
   for k, v in pairs(wrk.headers) do
      headers[k] = v
   end
   return wrk.format("POST", path, headers, body)
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
