#!/usr/bin/env python3
"""resilience_probe.py - bench/resilience's measuring helpers (standard library only).

  sample --port P --pid PID --service NAME --out FILE [--interval S]
      Until SIGTERM/SIGINT or until PID exits: every S seconds (default 0.1) one CSV row of
      fanout's /metrics (over one keep-alive connection) and of PID's utime+stime (/proc/PID/stat):
      t (epoch s), cpu_ticks, answered, answered_2xx, disconnects, svc_failures (failed requests,
      and fetches the open circuit refused), svc_circuit_open, svc_breaker_open (loops whose breaker for NAME is open or half-open).
  metrics --port P
      One scrape: "answered disconnects" over the four aggregate endpoints.
  window --port P --pid PID --sim-pid PID --start T --seconds S --tck N
      Scenario h's figures of one measuring window, as the CSV fields of WINDOW_FIELDS (`window-fields`
      prints them): /metrics and the utime+stime of fanout (PID) and of the simulator read together
      at the epoch time T (or now, if later) and S seconds after (started early, so that the
      interpreter's start falls outside the window), and their differences: requests answered, CPU per
      1000, upstream connections opened and TLS handshakes (full, resumed) summed over the services,
      and per 1000 requests.
  sim-counters FILE
      The counters fanout-sim --counters printed at exit in FILE, summed over its services:
      "requests answered abandoned refused late_work_ms deadline_stops connections tls_full tls_resumed
      tls_failed" (nothing when absent).
  outage-row --timeline FILE --log FILE --t0 T --after S --for S --recovery S --healthy S
             --load-start T --edge S --service NAME --tck N --breaker 0|1
      Scenario f's figures of one run, as the CSV fields after the run's own (see FIELDS):
      CPU per 1000 requests in the healthy window (the S seconds of --healthy before the outage,
      but from 1 s after the load started at most) and the outage window (samples nearest to the edges;
      both windows keep --edge seconds away from the outage's start and end: the simulator starts its
      outage clock a few tens of ms after --t0, and the samples are --interval apart), their ratio, req/s, the share of 2xx, and the recovery (recovery_s): from the outage's
      end to the breaker's `circuit_breaker ... "state":"closed"` log line with --breaker 1, else to
      the first sample from which fanout counts no more failures of the service (last_failure_after_s,
      computed for both).
"""
import http.client
import re
import signal
import sys
import time
from datetime import datetime, timezone

AGGREGATE = ("wg", "channel", "context-timeout", "errgroup")
LINE = re.compile(r'^(\w+)\{([^}]*)\}\s+(\S+)$')
LABEL = re.compile(r'(\w+)="([^"]*)"')

FIELDS = ["healthy_s", "healthy_requests", "healthy_rps", "healthy_ok_share", "healthy_cpu_per_1k",
          "outage_s", "outage_requests", "outage_rps", "outage_ok_share", "outage_cpu_per_1k", "cpu_ratio",
          "recovery_s", "recovery_rps", "recovery_cpu_per_1k", "breaker_opened_after_s", "breaker_closed_after_s",
          "last_failure_after_s", "other_breaker_opens", "samples"]
WINDOW_FIELDS = ["window_s", "requests", "rps", "ok_share", "server_cpu_per_1k", "sim_cpu_per_1k", "conns_opened",
                 "tls_full", "tls_resumed", "upstream_failures", "opened_per_1k", "full_per_1k", "resumed_per_1k"]


def parse_metrics(text, service):
    v = {"answered": 0, "answered_2xx": 0, "disconnects": 0, "svc_failures": 0, "svc_circuit_open": 0,
         "svc_breaker_open": 0, "opened": 0, "tls_full": 0, "tls_resumed": 0, "failures": 0}
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), dict(LABEL.findall(m.group(2))), m.group(3)
        try:
            x = float(value)
        except ValueError:
            continue
        if name == "fanout_requests_total" and labels.get("endpoint") in AGGREGATE:
            v["answered"] += x
            if labels.get("code", "").startswith("2"):
                v["answered_2xx"] += x
        elif name == "fanout_client_disconnects_total" and labels.get("endpoint") in AGGREGATE:
            v["disconnects"] += x
        elif name in ("fanout_upstream_failures_total", "fanout_upstream_circuit_open_total"):
            # Failed requests (never cancellations) and fetches refused by the open circuit.
            v["failures"] += x  # every service
            if labels.get("service") != service:
                continue
            v["svc_failures"] += x
            if name == "fanout_upstream_circuit_open_total":
                v["svc_circuit_open"] += x
        elif name == "fanout_upstream_connections_opened_total":
            v["opened"] += x
        elif name == "fanout_upstream_tls_handshakes_total" and labels.get("outcome") in ("full", "resumed"):
            v["tls_" + labels["outcome"]] += x
        elif name == "fanout_upstream_breaker_state" and labels.get("service") == service:
            if labels.get("state") in ("open", "half_open"):
                v["svc_breaker_open"] += x
    return v


class Scraper:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def get(self):
        for _ in range(2):  # a kept-alive connection may have been closed: one retry on a new one
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                self.conn.request("GET", "/metrics")
                res = self.conn.getresponse()
                return res.read().decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
        return None


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the stat line)
    except (OSError, IndexError, ValueError):
        return None


def cmd_sample(args):
    port, pid, service, out = int(args["--port"]), int(args["--pid"]), args["--service"], args["--out"]
    interval = float(args.get("--interval", "0.1"))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    scraper = Scraper(port)
    keys = ["answered", "answered_2xx", "disconnects", "svc_failures", "svc_circuit_open", "svc_breaker_open"]
    with open(out, "w") as f:
        f.write("t,cpu_ticks," + ",".join(keys) + "\n")
        f.flush()
        next_t = time.time()
        while not stop:
            ticks = cpu_ticks(pid)
            if ticks is None:
                break
            t = time.time()
            text = scraper.get()
            if text is not None:
                v = parse_metrics(text, service)
                f.write(f"{t:.3f},{ticks}," + ",".join(str(int(v[k])) for k in keys) + "\n")
                f.flush()
            next_t += interval
            time.sleep(max(0.0, next_t - time.time()))
    return 0


def cmd_metrics(args):
    text = Scraper(int(args["--port"])).get()
    if text is None:
        print("0 0")
        return 1
    v = parse_metrics(text, "")
    print(f"{int(v['answered'])} {int(v['disconnects'])}")
    return 0


def cmd_window(args):
    port, pid, sim_pid = int(args["--port"]), int(args["--pid"]), int(args["--sim-pid"])
    seconds, tck = float(args["--seconds"]), float(args["--tck"])
    scraper = Scraper(port)
    time.sleep(max(0.0, float(args.get("--start", "0")) - time.time()))

    def snapshot():
        t, a, b = time.time(), cpu_ticks(pid), cpu_ticks(sim_pid)
        text = scraper.get()
        if text is None or a is None or b is None:
            return None
        return {"t": t, "cpu": a, "sim_cpu": b, **parse_metrics(text, "")}

    first = snapshot()
    if first is not None:
        time.sleep(max(0.0, first["t"] + seconds - time.time()))
    last = snapshot() if first is not None else None
    out = dict.fromkeys(WINDOW_FIELDS, "")
    if first is None or last is None:
        print(",".join(out[k] for k in WINDOW_FIELDS))
        return 1
    d = {k: last[k] - first[k] for k in first}
    n = d["answered"]
    out.update(window_s=f"{d['t']:.2f}", requests=int(n), rps=f"{n / d['t']:.1f}",
               conns_opened=int(d["opened"]), tls_full=int(d["tls_full"]), tls_resumed=int(d["tls_resumed"]),
               upstream_failures=int(d["failures"]))
    if n:
        out.update(ok_share=f"{d['answered_2xx'] / n:.4f}",
                   server_cpu_per_1k=f"{d['cpu'] / tck * 1000 / n:.4f}",
                   sim_cpu_per_1k=f"{d['sim_cpu'] / tck * 1000 / n:.4f}",
                   opened_per_1k=f"{d['opened'] * 1000 / n:.3f}", full_per_1k=f"{d['tls_full'] * 1000 / n:.3f}",
                   resumed_per_1k=f"{d['tls_resumed'] * 1000 / n:.3f}")
    print(",".join(str(out[k]) for k in WINDOW_FIELDS))
    return 0


def cmd_sim_counters(path):
    keys = ["requests", "answered", "abandoned", "refused", "late_work_ms", "deadline_stops", "connections",
            "tls_full", "tls_resumed", "tls_failed"]
    total = dict.fromkeys(keys, 0)
    seen = False
    try:
        with open(path) as f:
            for line in f:
                # "users: connections 1 requests 3 answered 3 abandoned 0 refused 0 late_work_ms 0 deadline_stops 0"
                if ": connections " not in line:
                    continue
                words = line.split(":", 1)[1].split()
                pairs = dict(zip(words[0::2], words[1::2]))
                for k in keys:
                    total[k] += int(pairs.get(k, 0))
                seen = True
    except OSError:
        pass
    if seen:
        print(" ".join(str(total[k]) for k in keys))
    return 0


def breaker_events(log_path, service):
    """(epoch time, state) of each circuit_breaker line of the service in fanout's log; service
    "!NAME": of every other service."""
    events = []
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                if '"event":"circuit_breaker"' not in line:
                    continue
                if service.startswith("!"):
                    if f'"service":"{service[1:]}"' in line:
                        continue
                elif f'"service":"{service}"' not in line:
                    continue
                tm = re.search(r'"time":"([^"]+)Z"', line)
                st = re.search(r'"state":"(\w+)"', line)
                if not tm or not st:
                    continue
                t = datetime.strptime(tm.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()
                events.append((t, st.group(1)))
    except OSError:
        pass
    return events


def cmd_outage_row(args):
    t0, after, span = float(args["--t0"]), float(args["--after"]), float(args["--for"])
    recovery, healthy, tck = float(args["--recovery"]), float(args["--healthy"]), float(args["--tck"])
    service = args["--service"]
    rows = []
    with open(args["--timeline"]) as f:
        head = f.readline().strip().split(",")
        for line in f:
            parts = line.strip().split(",")
            if len(parts) == len(head):
                rows.append({k: float(x) for k, x in zip(head, parts)})
    start, end = t0 + after, t0 + after + span
    out = dict.fromkeys(FIELDS, "")
    out["samples"] = len(rows)

    def nearest(t):
        return min(rows, key=lambda r: abs(r["t"] - t)) if rows else None

    def window(a, b):
        ra, rb = nearest(a), nearest(b)
        if ra is None or rb["t"] - ra["t"] <= 0:
            return None
        n = rb["answered"] - ra["answered"]
        d = rb["t"] - ra["t"]
        cpu = (rb["cpu_ticks"] - ra["cpu_ticks"]) / tck
        return {"s": d, "n": n, "rps": n / d, "ok": (rb["answered_2xx"] - ra["answered_2xx"]) / n if n else None,
                "cpu_per_1k": cpu * 1000.0 / n if n else None}

    load_start = float(args.get("--load-start", "0"))
    edge = float(args.get("--edge", "0.25"))
    h = window(max(start - healthy, load_start + 1.0), start - edge)
    o = window(start + edge, end - edge)
    r = window(end + edge, end + recovery)
    if h:
        out.update(healthy_s=f"{h['s']:.2f}", healthy_requests=int(h["n"]), healthy_rps=f"{h['rps']:.1f}",
                   healthy_ok_share="" if h["ok"] is None else f"{h['ok']:.4f}",
                   healthy_cpu_per_1k="" if h["cpu_per_1k"] is None else f"{h['cpu_per_1k']:.4f}")
    if o:
        out.update(outage_s=f"{o['s']:.2f}", outage_requests=int(o["n"]), outage_rps=f"{o['rps']:.1f}",
                   outage_ok_share="" if o["ok"] is None else f"{o['ok']:.4f}",
                   outage_cpu_per_1k="" if o["cpu_per_1k"] is None else f"{o['cpu_per_1k']:.4f}")
    if h and o and h["cpu_per_1k"] and o["cpu_per_1k"] is not None:
        out["cpu_ratio"] = f"{o['cpu_per_1k'] / h['cpu_per_1k']:.3f}"
    if r:
        out.update(recovery_rps=f"{r['rps']:.1f}",
                   recovery_cpu_per_1k="" if r["cpu_per_1k"] is None else f"{r['cpu_per_1k']:.4f}")
    events = breaker_events(args["--log"], service)
    opened = [t for t, s in events if s == "open" and t >= start - 1.0]
    if opened:
        out["breaker_opened_after_s"] = f"{opened[0] - start:.3f}"
    closed = [t for t, s in events if s == "closed" and t >= start]
    if closed:
        out["breaker_closed_after_s"] = f"{closed[0] - end:.3f}"
    # The last failure: the first sample from which the service's failure count no longer grows
    # (an upper bound, to the sampling interval); none after the outage's start: "".
    if rows:
        final = rows[-1]["svc_failures"]
        first_final = next((row for row in rows if row["svc_failures"] == final), None)
        if first_final is not None and first_final["t"] > start:
            out["last_failure_after_s"] = f"{first_final['t'] - end:.3f}"
            if rows[-1]["t"] - first_final["t"] < 0.5:  # still failing at the end of the run
                out["last_failure_after_s"] = "still failing"
    # breakers opened on the healthy services: timeouts of a starved machine (fanout-sim not scheduled)
    out["other_breaker_opens"] = sum(1 for _, s in breaker_events(args["--log"], "!" + service) if s == "open")
    if args.get("--breaker", "0") == "1":
        out["recovery_s"] = out["breaker_closed_after_s"] or "not closed"
    else:
        out["recovery_s"] = out["last_failure_after_s"]
    print(",".join(str(out[k]) for k in FIELDS))
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    if cmd == "sim-counters" and len(argv) == 3:
        return cmd_sim_counters(argv[2])
    if cmd == "fields":
        print(",".join(FIELDS))
        return 0
    if cmd == "window-fields":
        print(",".join(WINDOW_FIELDS))
        return 0
    args = dict(zip(argv[2::2], argv[3::2]))
    if cmd == "sample":
        return cmd_sample(args)
    if cmd == "metrics":
        return cmd_metrics(args)
    if cmd == "outage-row":
        return cmd_outage_row(args)
    if cmd == "window":
        return cmd_window(args)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
