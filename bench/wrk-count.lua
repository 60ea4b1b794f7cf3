-- wrk-count.lua: wrk-summary.lua plus a count of requests sent but never answered, for the hung
-- scenario (wrk's own "timeout" counter only counts answers that arrived later than --timeout; a
-- request that never gets an answer is not counted anywhere). Defining request()/response() makes
-- wrk build each request in Lua and parse every answer: slower, so only used where throughput is
-- not the point. Prints, after wrk's normal output:
-- WRKSUMMARY ... (as wrk-summary.lua)
-- WRKCOUNT sent answered
-- The WRKSUMMARY line comes from wrk-summary.lua, beside this file.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk-summary.lua")
local summary_done = done
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   sent = 0
   answered = 0
end

function request()
   sent = sent + 1
   return wrk.request()
end

function response(status, headers, body)
   answered = answered + 1
end

function done(summary, latency, requests)
   summary_done(summary, latency, requests)
   local s, a = 0, 0
   for _, t in ipairs(threads) do
      s = s + t:get("sent")
      a = a + t:get("answered")
   end
   io.write(string.format("WRKCOUNT %d %d\n", s, a))
end
