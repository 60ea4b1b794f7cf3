-- wrk-count.lua: wrk-summary.lua plus a count of requests sent but never answered, for the hung
-- scenario (wrk's own "timeout" counter only counts answers that arrived later than --timeout; a
-- request that never gets an answer is not counted anywhere). Defining request()/response() makes
-- wrk build each request in Lua and parse every answer: slower, so only used where throughput is
-- not the point. Prints, after wrk's normal output:
-- WRKSUMMARY ... (as wrk-summary.lua)
-- WRKCOUNT sent answered
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
   local e = summary.errors
   local n = summary.requests
   local function pct(p)
      if n == 0 then return 0 end
      return latency:percentile(p)
   end
   io.write(string.format("WRKSUMMARY %d %d %d %d %d %d %d %d %.0f %.0f %.0f %.0f %.1f\n",
      n, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      pct(50), pct(90), pct(99),
      (n == 0) and 0 or latency.max, (n == 0) and 0 or latency.mean))
   local s, a = 0, 0
   for _, t in ipairs(threads) do
      s = s + t:get("sent")
      a = a + t:get("answered")
   end
   io.write(string.format("WRKCOUNT %d %d\n", s, a))
end
