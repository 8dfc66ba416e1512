-- bench/wrk/dryrun.lua - scenario (b): POST /v1/sources/generic/test with
-- the payload BENCH_PAYLOAD: HTTP + JSON parse + engine + the alert JSON of
-- the answer; no database.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
local rest = load_payload(os.getenv("BENCH_PAYLOAD"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"bench dry run",' .. rest
