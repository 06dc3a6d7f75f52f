-- HTTP/1.1 pipelining for wrk: each write sends WRK_PIPELINE (default 16)
-- requests back to back, and wrk waits for as many responses before the next.
-- wrk -t1 -c64 -d5s -s scripts/wrk-pipeline.lua http://127.0.0.1:18180/small.txt
local depth = tonumber(os.getenv("WRK_PIPELINE") or "16")
local batch

init = function(args)
  local requests = {}
  for i = 1, depth do
    requests[i] = wrk.format(nil) -- method, path and headers from the command line
  end
  batch = table.concat(requests)
end

request = function()
  return batch
end
