#!/usr/bin/env python3
"""Time to the first part of a streamed route: HOST PORT PATH REQUESTS FASTEST_MS.

Sends REQUESTS GETs one after another, each on a new connection, timestamps the arrival of the
first complete NDJSON line and of the last chunk, and prints p50/p99 of both and how far the
first line's p99 is above FASTEST_MS (the fastest backend's latency)."""
import socket
import statistics
import sys
import time


def one(host, port, path):
    start = time.perf_counter()
    s = socket.create_connection((host, port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    first = None
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
        body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
        if first is None and b"\n" in body.split(b"\r\n", 1)[-1]:
            first = time.perf_counter() - start
    s.close()
    return first * 1000, (time.perf_counter() - start) * 1000


def main():
    host, port, path, n, fastest = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    firsts, lasts = [], []
    for _ in range(n):
        f, l = one(host, port, path)
        firsts.append(f)
        lasts.append(l)
    q = lambda xs, p: statistics.quantiles(xs, n=100)[p - 1]
    print(f"stream: first line p50 {q(firsts, 50):.2f} ms, p99 {q(firsts, 99):.2f} ms; "
          f"whole answer p50 {q(lasts, 50):.2f} ms, p99 {q(lasts, 99):.2f} ms ({n} requests)")
    print(f"stream: first line p99 - fastest backend ({fastest:g} ms) = {q(firsts, 99) - fastest:.2f} ms (target <= 5)")


if __name__ == "__main__":
    main()
