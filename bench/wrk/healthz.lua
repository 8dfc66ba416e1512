-- bench/wrk/healthz.lua - scenario (a): GET /healthz, the cost of HTTP and
-- the event loop alone (no parsing, no engine, no database).
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
wrk.method = "GET"
