-- bench/wrk/duplicate.lua - scenario (d): POST /v1/ingest/generic of one
-- and the same alert over and over ("bench duplicate TAG"): the first request
-- inserts it, every later one takes the dedup path (fingerprint lock, find
-- the alert, duplicate_count + 1) in the group-commit transaction.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
local rest = load_payload(os.getenv("BENCH_PAYLOAD"))
local tag = json_escape(os.getenv("BENCH_TAG") or "0")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"bench duplicate ' .. tag .. '",' .. rest
