-- bench/wrk/unique.lua - scenario (c): POST /v1/ingest/generic where every
-- request's title differs ("bench unique TAG-THREAD-N"), so every request
-- has its own fingerprint and inserts a new alert: HTTP + engine + the
-- group-commit transaction. TAG (BENCH_TAG) keeps repeated runs apart.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
local rest = load_payload(os.getenv("BENCH_PAYLOAD"))
local tag = json_escape(os.getenv("BENCH_TAG") or "0")
local n = 0
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("tid", next_id)
end

function request()
   n = n + 1
   local body = '{"title":"bench unique ' .. tag .. '-' .. tostring(tid) .. '-' ..
      tostring(n) .. '",' .. rest
   return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
