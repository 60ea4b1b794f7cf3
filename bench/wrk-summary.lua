-- wrk-summary.lua: only a done() hook (requests stay static, wrk's fast path is kept).
-- Prints one machine-readable line after wrk's normal output:
-- WRKSUMMARY requests duration_us bytes connect read write status timeout p50 p90 p99 max mean  (latencies in µs)
function done(summary, latency, requests)
   local e = summary.errors
   local n = summary.requests
   local function pct(p)
      if n == 0 then return 0 end
      return latency:percentile(p)
   end
   -- %.0f, not %d, for the counts: LuaJIT's %d stops at 2^31 - 1, and a 5 s run can read more bytes
   io.write(string.format("WRKSUMMARY %.0f %.0f %.0f %d %d %d %d %d %.0f %.0f %.0f %.0f %.1f\n",
      n, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      pct(50), pct(90), pct(99),
      (n == 0) and 0 or latency.max, (n == 0) and 0 or latency.mean))
end
