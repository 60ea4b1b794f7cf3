#!/usr/bin/env python3
"""Load and hostile clients for `bench/soak --faults` (Python 3 standard library only).

Drives an already running fanout (its upstreams: fanout-sim in chaos mode) for --duration seconds:
keep-alive load connections on the four aggregate endpoints, plus hostile clients that reconnect in
a loop. Samples fanout's RSS and fds, then checks the soak's targets and writes faults.csv and
faults.md into --out. Exit status 1 when a check fails.
"""
import argparse
import asyncio
import collections
import csv
import os
import re
import statistics
import sys
import time

ENDPOINTS = {  # metrics label -> path
    "wg": "/api/aggregate/wg",
    "channel": "/api/aggregate/channel",
    "context-timeout": "/api/aggregate/channel-with-context-timeout",
    "errgroup": "/api/aggregate/errgroup",
}
REQUEST_TIMEOUT = 10.0  # upstream stalls last 2 s; wg/channel wait for them, so 10 s is ample
STOP_GRACE = 12.0  # in-flight requests at the end of the load get this long
HOSTILE_LIFETIME = 40.0  # a hostile connection fanout has not closed by then is given up
MiB = 1024.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True, help="fanout's pid, for /proc")
    p.add_argument("--upstream-ports", required=True, help="comma-separated fanout-sim ports")
    p.add_argument("--duration", type=float, default=600)
    p.add_argument("--interval", type=float, default=2)
    p.add_argument("--conns", type=int, default=32, help="load connections")
    p.add_argument("--hostile", type=int, default=3, help="connections of each hostile kind at once")
    p.add_argument("--stderr", required=True, help="fanout's stderr file, for its size")
    p.add_argument("--out", required=True)
    return p.parse_args()


# ---- fanout's process: memory and file descriptors ----

def proc_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((line.split()[1] for line in f if line.startswith("State:")), "")
    except OSError:
        return ""


def tcp_table(pid):
    """inode -> (local port, remote port, state) of the sockets in fanout's network namespace."""
    table = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                next(f)
                for line in f:
                    col = line.split()
                    lport = int(col[1].rsplit(":", 1)[1], 16)
                    rport = int(col[2].rsplit(":", 1)[1], 16)
                    table[col[9]] = (lport, rport, col[3])
        except FileNotFoundError:
            pass
    return table


def fd_counts(pid, port, upstream_ports):
    """(all fds, client connections, upstream connections, upstream ones in CLOSE_WAIT, sockets
    no longer in the kernel's TCP table).

    Upstream connections are kept apart: the pool keeps idle keep-alive ones by design, so after
    the load they stay open (bounded by --upstream-pool-size) and are not a leak. A connection the
    peer reset leaves the TCP table while its fd stays open until fanout next touches it: a pooled
    one that the chaos upstreams reset waits for its next use."""
    table = tcp_table(pid)
    total = clients = upstream = close_wait = unlisted = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        total += 1
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", link)
        if not m:
            continue
        if m.group(1) not in table:
            unlisted += 1
            continue
        lport, rport, state = table[m.group(1)]
        if lport == port and state != "0A":  # 0A: the listening socket
            clients += 1
        elif rport in upstream_ports:
            upstream += 1
            close_wait += state == "08"
    return total, clients, upstream, close_wait, unlisted


# ---- the load ----

class BadAnswer(Exception):
    pass


class Load:
    def __init__(self):
        self.sent = 0
        self.answered = collections.Counter()  # (endpoint, code)
        self.unanswered = collections.Counter()  # why, for requests that ended during the run
        self.stop_unanswered = collections.Counter()  # why, for requests in flight at stop
        self.in_flight = 0
        self.in_flight_at_stop = 0
        self.stop_answered = 0
        self.connect_failures = 0
        self.stopped_at = None  # monotonic time the load stopped


async def exchange(reader, writer, path):
    """One request on a keep-alive connection: (status, must close)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: fanout\r\n\r\n".encode())
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = head[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1.") or not status[1].isdigit():
        raise BadAnswer(f"status line {head[0][:60]!r}")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "content-length" not in headers:  # fanout always sends it
        raise BadAnswer("no Content-Length")
    await reader.readexactly(int(headers["content-length"]))
    return int(status[1]), headers.get("connection") == "close" or status[0] != "HTTP/1.1"


def why(exc):
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer within 10 s"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "closed without (whole) answer"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, BadAnswer):
        return f"bad answer: {exc}"
    return type(exc).__name__


async def load_worker(i, args, load, stop):
    names = list(ENDPOINTS)
    reader = writer = None
    n = i  # each connection starts at another endpoint
    try:
        while not stop.is_set():
            name = names[n % len(names)]
            path = ENDPOINTS[name] + ("?timeout_ms=300" if n % 3 == 0 else "")
            n += 1
            if writer is None:
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(args.host, args.port), 5)
                except (OSError, asyncio.TimeoutError):
                    load.connect_failures += 1
                    await asyncio.sleep(0.1)
                    continue
            load.sent += 1
            load.in_flight += 1
            close = True
            try:
                code, close = await asyncio.wait_for(exchange(reader, writer, path), REQUEST_TIMEOUT)
                load.answered[(name, code)] += 1
                if load.stopped_at is not None:
                    load.stop_answered += 1
            except (OSError, EOFError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, BadAnswer, ValueError) as e:
                # After the stop only requests that were in flight at it are still running.
                (load.stop_unanswered if load.stopped_at else load.unanswered)[why(e)] += 1
            finally:
                load.in_flight -= 1
            if close:
                writer.transport.abort()
                reader = writer = None
    finally:
        if writer is not None:
            writer.transport.abort()


# ---- hostile clients: each kind reconnects in a loop; fanout should close every connection ----

class Hostile:
    def __init__(self):
        self.connections = collections.Counter()  # kind -> connections made
        self.open = collections.Counter()  # kind -> open now
        self.ends = collections.defaultdict(collections.Counter)  # kind -> how they ended
        self.lifetime = collections.defaultdict(float)  # kind -> seconds, summed over ended ones
        self.non_reader_requests = collections.Counter()  # path -> pipelined GETs written


async def first_status(reader):
    """Reads until EOF; returns the status code of the first answer, if any."""
    line = await reader.readline()
    status = line.split()[1].decode() if line.startswith(b"HTTP/") and len(line.split()) > 1 else None
    while await reader.read(65536):
        pass
    return status


async def endless_chunk_ext(reader, writer, hostile):
    # A chunk-size line that never ends: fanout must stop at --max-request-head (400, close).
    writer.write(b"POST /api/aggregate/wg HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;")
    piece = b"a" * 65536
    while True:
        writer.write(piece)
        await writer.drain()


async def continuous_sender(reader, writer, hostile):
    # A valid body that never ends: fanout must stop at --max-request-body (413, close).
    writer.write(b"POST /api/aggregate/wg HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"10;e=1\r\n0123456789abcdef\r\n" * 2048
    while True:
        writer.write(piece)
        await writer.drain()


async def slowloris(reader, writer, hostile):
    # A head one byte a second (longer than HOSTILE_LIFETIME): fanout must close it at
    # --header-timeout-ms.
    head = b"GET /api/aggregate/wg HTTP/1.1\r\nHost: x\r\n" + b"X-a: b\r\n" * 100
    for i in range(len(head)):
        writer.write(head[i:i + 1])
        await writer.drain()
        await asyncio.sleep(1)


def non_reader(path):
    """Pipelines GETs of `path` and never reads: fanout's answers back up, and it must close the
    connection once a write stays blocked for --header-timeout-ms, without buffering the requests
    in its own memory. (The stream reader stops reading from the socket once 2 KiB are buffered.)
    On wg the answers come slowly enough for the kernel's socket buffers (up to 4 MiB) to take
    them for many minutes; /healthz fills them within seconds, so that the close is exercised."""
    batch = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 100

    async def send(reader, writer, hostile):
        while True:
            writer.write(batch)
            await writer.drain()
            hostile.non_reader_requests[path] += 100
    return send


HOSTILE_KINDS = {
    "endless chunk extension": endless_chunk_ext,
    "continuous sender": continuous_sender,
    "slowloris": slowloris,
    "non-reader (wg)": non_reader(ENDPOINTS["wg"]),
    "non-reader (healthz)": non_reader("/healthz"),
}


async def hostile_connection(args, kind, hostile):
    """One connection: sends as `send` does while watching for fanout's answer and close."""
    # A small limit, so that the non-reader really stops reading from the socket.
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(args.host, args.port, limit=1024), 5)
    tasks = [asyncio.ensure_future(HOSTILE_KINDS[kind](reader, writer, hostile))]
    if not kind.startswith("non-reader"):
        tasks.append(asyncio.ensure_future(first_status(reader)))
    try:
        done, _ = await asyncio.wait(tasks, timeout=HOSTILE_LIFETIME,
                                     return_when=asyncio.FIRST_COMPLETED)
        if not done:
            return "still open after 40 s (client gave up)"
        status = None
        end = "closed by fanout"
        for t in done:
            e = t.exception()
            if isinstance(e, ConnectionResetError):
                end = "reset by fanout"
            elif isinstance(e, BrokenPipeError):
                end = "closed by fanout (EPIPE)"
            elif e is not None:
                end = f"error {type(e).__name__}"
            elif t is not tasks[0]:
                status = t.result()
        if status is None and len(tasks) > 1 and tasks[1].done() and not tasks[1].exception():
            status = tasks[1].result()
        return f"{end}, answer {status}" if status else f"{end}, no answer read"
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # abort, not close: close() would wait for fanout to take the bytes still queued.
        writer.transport.abort()


async def hostile_loop(args, kind, hostile, stop):
    while not stop.is_set():
        hostile.connections[kind] += 1
        hostile.open[kind] += 1
        began = time.monotonic()
        try:
            end = await hostile_connection(args, kind, hostile)
        except asyncio.CancelledError:
            hostile.ends[kind]["open when the load stopped"] += 1
            raise
        except (OSError, asyncio.TimeoutError) as e:
            end = f"connect failed ({type(e).__name__})"
        finally:
            hostile.open[kind] -= 1
        hostile.ends[kind][end] += 1
        hostile.lifetime[kind] += time.monotonic() - began
        await asyncio.sleep(0.2)  # keeps the reconnect loop from taking the driver's CPU


# ---- sampling, the end of the run, the report ----

async def scrape_metrics(args):
    reader, writer = await asyncio.wait_for(asyncio.open_connection(args.host, args.port), 5)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(-1), 10)
    finally:
        writer.close()
    counts = collections.Counter()
    gauges = {}
    for line in data.decode().split("\r\n\r\n", 1)[1].splitlines():
        m = re.match(r'fanout_requests_total\{endpoint="([^"]+)",route="[^"]*",code="(\d+)"\} (\S+)', line)
        if m:
            counts[(m.group(1), int(m.group(2)))] += int(float(m.group(3)))
        m = re.match(r"(fanout_(?:requests_in_flight|connections_open)) (\S+)", line)
        if m:
            gauges[m.group(1)] = float(m.group(2))
    return counts, gauges


def stderr_events(path):
    counts = collections.Counter()
    with open(path, errors="replace") as f:
        for line in f:
            m = re.search(r'"event":"([a-z_]*)"', line)
            counts[m.group(1) if m else "(no event)"] += 1
    return counts


async def run(args):
    pid, ups = args.pid, {int(p) for p in args.upstream_ports.split(",")}
    load, hostile, stop = Load(), Hostile(), asyncio.Event()
    rows = []
    t0 = time.monotonic()

    def sample(phase):
        if proc_state(pid) in ("", "Z", "X"):
            raise SystemExit(f"fanout (pid {pid}) exited during the soak")
        fds = fd_counts(pid, args.port, ups)
        rows.append({
            "t_s": round(time.monotonic() - t0, 1), "phase": phase,
            "rss_kb": proc_kb(pid, "VmRSS"), "hwm_kb": proc_kb(pid, "VmHWM"),
            "fds": fds[0], "client_fds": fds[1], "upstream_fds": fds[2],
            "sent": load.sent, "answered": sum(load.answered.values()),
            "unanswered": sum(load.unanswered.values()), "in_flight": load.in_flight,
            "hostile_open": sum(hostile.open.values()),
        })
        return fds

    baseline_fds = sample("before")[0]
    workers = [asyncio.ensure_future(load_worker(i, args, load, stop)) for i in range(args.conns)]
    hostiles = [asyncio.ensure_future(hostile_loop(args, kind, hostile, stop))
                for kind in HOSTILE_KINDS for _ in range(args.hostile)]

    # Samples at fixed times from the start, so that they do not drift with the load.
    k = 1
    while k * args.interval < args.duration + 1e-9:
        await asyncio.sleep(max(0.0, t0 + k * args.interval - time.monotonic()))
        sample("load")
        k += 1
    await asyncio.sleep(max(0.0, t0 + args.duration - time.monotonic()))
    if rows[-1]["t_s"] < args.duration - 1:
        sample("load")

    # Stop: no new requests; those in flight get STOP_GRACE; hostile peers leave now.
    load.stopped_at = time.monotonic()
    load.in_flight_at_stop = load.in_flight
    stop.set()
    for t in hostiles:
        t.cancel()
    _, pending = await asyncio.wait(workers, timeout=STOP_GRACE)
    pending_after_grace = load.in_flight  # read before cancelling, which decrements it
    for t in pending:
        t.cancel()
    await asyncio.gather(*workers, *hostiles, return_exceptions=True)
    stop_wait = time.monotonic() - load.stopped_at
    sample("stopped")

    # fds: everything but the pooled upstream connections should be back to the baseline.
    deadline = time.monotonic() + 15
    while True:
        fds = fd_counts(pid, args.port, ups)
        if fds[0] - fds[2] <= baseline_fds or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    fds_wait = time.monotonic() - load.stopped_at - stop_wait
    sample("after")

    metrics, gauges = await scrape_metrics(args)
    return dict(load=load, hostile=hostile, rows=rows, baseline_fds=baseline_fds, fds_after=fds,
                fds_wait=fds_wait, pending_after_grace=pending_after_grace, stop_wait=stop_wait,
                metrics=metrics, gauges=gauges)


def report(args, r):
    load, hostile, rows = r["load"], r["hostile"], r["rows"]
    with open(os.path.join(args.out, "faults.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    # Warm-up: 30 s (half of a shorter run), at least one sample interval: in the first seconds the
    # pools, buffers and allocator caches are still filling, which is not growth.
    warmup = max(args.interval, min(30.0, args.duration / 2))
    during = [x for x in rows if x["phase"] == "load"]
    measured = [x for x in during if x["t_s"] >= warmup - 1]
    # Growth: the median of the later half of the samples over the earlier half's. One sample
    # moves with what the peers hold at that moment (two single samples differed by up to ±4 MiB
    # with no leak); a leak moves them all (64 bytes per answer: about +10 MiB in 60 s).
    half = max(len(measured) // 2, 1)
    early, late = measured[:half], measured[half:] or measured[-1:]
    early_kb = statistics.median(x["rss_kb"] for x in early)
    late_kb = statistics.median(x["rss_kb"] for x in late)
    growth_kb = late_kb - early_kb
    last = rows[-1]
    idle = rows[0]
    peak_kb = last["hwm_kb"]
    answered = sum(load.answered.values())
    unanswered = sum(load.unanswered.values())
    stop_lost = sum(load.stop_unanswered.values()) + r["pending_after_grace"]
    stderr_bytes = os.path.getsize(args.stderr)
    total_fds, client_fds, upstream_fds, close_wait, unlisted = r["fds_after"]
    sessions = r["gauges"].get("fanout_connections_open", -1)

    # /metrics counts answers it sent; the load's answers must match it exactly, except on wg,
    # where the non-readers' pipelined requests are answered too (into buffers nobody reads, so
    # their number is unknown): there metrics - load must lie in [0, requests the non-readers sent].
    mismatches = []
    wg_extra = 0
    for name in ENDPOINTS:
        codes = {c for (e, c) in list(load.answered) + list(r["metrics"]) if e == name}
        for code in sorted(codes):
            got, want = r["metrics"][(name, code)], load.answered[(name, code)]
            if name == "wg":
                wg_extra += got - want
                if got < want:
                    mismatches.append(f"wg {code}: /metrics {got} < received {want}")
            elif got != want:
                mismatches.append(f"{name} {code}: /metrics {got} vs received {want}")
    wg_pipelined = hostile.non_reader_requests[ENDPOINTS["wg"]]
    wg_ok = 0 <= wg_extra <= wg_pipelined

    checks = [
        ("no request unanswered (except those in flight at the stop)", unanswered == 0,
         f"{unanswered} unanswered of {load.sent} sent"
         + (" (" + ", ".join(f"{n} {w}" for w, n in load.unanswered.items()) + ")" if unanswered else "")
         + f"; {load.in_flight_at_stop} in flight at the stop: {load.stop_answered} answered "
           f"within {r['stop_wait']:.1f} s, {stop_lost} not"),
        ("RSS growth after warm-up < 2 MiB", growth_kb < 2048,
         f"{growth_kb / MiB:+.2f} MiB (median {early_kb / MiB:.1f} MiB of {len(early)} samples from "
         f"{early[0]['t_s']:.0f} s, {late_kb / MiB:.1f} MiB of {len(late)} from {late[0]['t_s']:.0f} s; "
         f"each {min(x['rss_kb'] for x in measured) / MiB:.1f} to "
         f"{max(x['rss_kb'] for x in measured) / MiB:.1f} MiB)"),
        ("peak RSS < 64 MiB with hostile peers connected", peak_kb < 64 * 1024,
         f"VmHWM {peak_kb / MiB:.1f} MiB"),
        # A socket the peer reset is not told apart by its ports any more; fanout's own gauge of
        # client connections (its scrape alone) shows it is not a client's.
        ("fds back to the baseline after the load",
         total_fds - upstream_fds - unlisted <= r["baseline_fds"] and sessions == 1,
         f"baseline {r['baseline_fds']}; after {total_fds - upstream_fds - unlisted} within "
         f"{r['fds_wait']:.1f} s, {client_fds} client connections (fanout_connections_open {sessions:g} "
         f"with the scrape), plus {upstream_fds} pooled upstream connections ({close_wait} in "
         f"CLOSE_WAIT), bounded by --upstream-pool-size, and {unlisted} reset by their peer"),
        ("/metrics totals equal the answers received", not mismatches and wg_ok,
         "; ".join(mismatches) if mismatches else
         f"{answered} answers, equal per endpoint and code; wg also counts {wg_extra} answers to "
         f"the non-readers (who sent {wg_pipelined} requests)"),
        ("stderr < 10 MB", stderr_bytes < 10_000_000, f"{stderr_bytes / 1e6:.2f} MB"),
    ]

    codes = sorted({c for (_, c) in load.answered})
    out = [
        f"## Fault soak: {args.duration:.0f} s, `fanout --threads 2` on chaos upstreams\n",
        f"fanout-sim `--behaviour chaos --jitter-ms 5` for all three services; {args.conns} keep-alive "
        f"load connections round-robin over the four aggregate endpoints (every third with "
        f"`?timeout_ms=300`); {args.hostile} connections of each hostile kind at once. "
        f"VmRSS every {args.interval:.0f} s (faults.csv), warm-up {warmup:.0f} s.\n",
        f"| idle RSS | RSS from {early[0]['t_s']:.0f} s | from {late[0]['t_s']:.0f} s (medians) | growth | "
        f"peak RSS (VmHWM) | sent | answered | unanswered | in flight at stop |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {idle['rss_kb'] / MiB:.1f} MiB | {early_kb / MiB:.1f} MiB | "
        f"{late_kb / MiB:.1f} MiB | {growth_kb / MiB:+.2f} MiB | {peak_kb / MiB:.1f} MiB | "
        f"{load.sent} | {answered} | {unanswered} | {load.in_flight_at_stop} |\n",
        "Answers received, by endpoint and status:\n",
        "| endpoint | " + " | ".join(str(c) for c in codes) + " | total |",
        "|---|" + "---:|" * (len(codes) + 1),
    ]
    for name in ENDPOINTS:
        row = [load.answered[(name, c)] for c in codes]
        out.append(f"| {name} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    out += ["", "Hostile clients (each kind reconnecting for the whole run):\n",
            "| kind | connections | mean lifetime | how they ended |", "|---|---:|---:|---|"]
    for kind in HOSTILE_KINDS:
        ended = sum(hostile.ends[kind].values()) - hostile.ends[kind]["open when the load stopped"]
        life = f"{hostile.lifetime[kind] / ended:.2f} s" if ended else "-"
        how = "; ".join(f"{n} {w}" for w, n in hostile.ends[kind].most_common())
        out.append(f"| {kind} | {hostile.connections[kind]} | {life} | {how} |")
    if any("gave up" in end for end in hostile.ends["non-reader (wg)"]):
        out.append("\nfanout answers the wg non-readers at the pace of its upstreams, and the socket "
                   "buffers (up to 4 MiB) take those answers for minutes, so none of its writes "
                   "stays blocked for --header-timeout-ms before the client gives up; the healthz "
                   "non-readers, answered at once, show fanout closing such a connection.")
    out += ["", "| check | result | figures |", "|---|---|---|"]
    out += [f"| {name} | {'PASS' if ok else 'FAIL'} | {figures} |" for name, ok, figures in checks]
    events = stderr_events(args.stderr)
    out += ["", f"fanout's stderr ({stderr_bytes} bytes), lines by event: "
            + ", ".join(f"{e} {n}" for e, n in events.most_common()) + "."]
    out.append("\nAfter the load, /metrics (its own scrape included): " + ", ".join(
        f"{k} {r['gauges'].get(k, 'missing')}"
        for k in ("fanout_connections_open", "fanout_requests_in_flight")) + ".")
    if load.connect_failures:
        out.append(f"\nLoad connections that could not connect: {load.connect_failures}.")
    text = "\n".join(out) + "\n"
    with open(os.path.join(args.out, "faults.md"), "w") as f:
        f.write(text)
    return text, all(ok for _, ok, _ in checks)


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    result = asyncio.run(run(args))
    text, ok = report(args, result)
    print(text, end="")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
