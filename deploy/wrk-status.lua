-- wrk-status.lua: counts answers by status class for deploy/rolling-restart. wrk itself counts
-- only statuses >= 400 ("Non-2xx or 3xx responses"); this counts every answer outside 200..299,
-- by code. Defining response() makes wrk parse every answer in Lua: slower, fine here.
-- Prints, after wrk's normal output, one machine-readable line:
--   WRKSTATUS requests=N non2xx=N connect=N read=N write=N timeout=N codes=CODE:N,CODE:N
-- requests, connect, read, write and timeout are wrk's own (summary.requests, summary.errors);
-- codes lists the non-2xx statuses seen ("-" when none).
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   non2xx = 0
   codes = {}
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      codes[status] = (codes[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   local bad, all = 0, {}
   for _, t in ipairs(threads) do
      bad = bad + t:get("non2xx")
      for code, n in pairs(t:get("codes")) do
         all[code] = (all[code] or 0) + n
      end
   end
   local list = {}
   for code, n in pairs(all) do
      table.insert(list, string.format("%d:%d", code, n))
   end
   table.sort(list)
   local e = summary.errors
   io.write(string.format("WRKSTATUS requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d codes=%s\n",
      summary.requests, bad, e.connect, e.read, e.write, e.timeout,
      #list > 0 and table.concat(list, ",") or "-"))
end
