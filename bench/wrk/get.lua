-- GET on wrk's URL path (the stats workload).

dofile(os.getenv("OQ_WRK_DIR") .. "/report.lua")
