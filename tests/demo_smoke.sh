#!/bin/sh
# The out-of-the-box demo: no flags but a free port; every aggregate endpoint answers complete.
set -eu
fanout="$1"
log=$(mktemp)
"$fanout" --listen 127.0.0.1:0 --threads 2 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 50); do grep -q '^listening on ' "$log" && break; sleep 0.1; done
cat "$log"
url=$(sed -n 's/^listening on //p' "$log")
[ -n "$url" ]
[ "$(grep -c '^demo upstream ' "$log")" -eq 3 ]
for e in wg channel channel-with-context-timeout errgroup; do
    body=$(curl -sf --max-time 5 "$url/api/aggregate/$e")
    echo "$e: $body" | cut -c1-120
    echo "$body" | grep -q '"complete":true'
done
kill -TERM $pid
wait $pid || { echo "fanout exited with $? on SIGTERM"; exit 1; }
