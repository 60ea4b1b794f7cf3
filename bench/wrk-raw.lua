-- wrk-raw.lua: wrk-summary.lua plus the latency percentiles of the requests as they were recorded.
-- Before done() runs, wrk 4 "corrects" its latency histogram for coordinated omission
-- (stats_correct): each answer slower than twice the mean interval between two requests of a
-- connection (e = run time / (requests / connections)) adds one synthetic sample at every e below
-- it. With a heavy tail (scenario e: 2% at 50 ms, the rest at 1 ms) this shifts p90/p99 a lot (a
-- p90 of 30 ms when 94% of the requests took 1-2 ms). This script undoes the correction: for
-- m > e, corrected[m] = recorded[m] + corrected[m + e] (latency(i) gives the i-th non-empty value
-- of the histogram and its count). Needs the connection count (wrk does not give it to done()) in
-- the environment: WRK_CONNS=N. Prints, after the WRKSUMMARY line:
-- WRKRAW recorded p50 p90 p99 max mean e   (latencies and e in µs; nothing without WRK_CONNS)
-- Only a done() hook: wrk's fast path is kept.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk-summary.lua")
local summary_done = done

function done(summary, latency, requests)
   summary_done(summary, latency, requests)
   local conns = tonumber(os.getenv("WRK_CONNS") or "")
   if not conns or conns <= 0 or summary.requests == 0 then return end
   -- wrk.c: interval = runtime_us / (complete / connections), integer divisions
   local per = math.floor(summary.requests / conns)
   local e = (per > 0) and math.floor(summary.duration / per) or 0
   -- the corrected histogram, value (µs) -> count: latency(i) is the i-th non-empty value and its count
   local corrected, hi = {}, 0
   for i = 1, #latency do
      local v, c = latency(i)
      corrected[v] = c
      if v > hi then hi = v end
   end
   local counts, values, count, sum = {}, {}, 0, 0
   for v, c in pairs(corrected) do
      if e > 0 and v > e then c = c - (corrected[v + e] or 0) end
      if c > 0 then
         counts[v] = c
         values[#values + 1] = v
         count = count + c
         sum = sum + c * v
      end
   end
   if count == 0 then return end
   table.sort(values)
   local function pct(p)  -- as wrk's stats_percentile
      local rank, total = math.floor(p / 100 * count + 0.5 + 0.5), 0
      for _, v in ipairs(values) do
         total = total + counts[v]
         if total >= rank then return v end
      end
      return hi
   end
   io.write(string.format("WRKRAW %d %d %d %d %d %.1f %d\n", count, pct(50), pct(90), pct(99), hi, sum / count, e))
end
