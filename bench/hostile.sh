#!/usr/bin/env bash
# Measures what hostile clients cost `confab serve` (release build, SQLite,
# default settings unless said), each against a fresh server:
#   1. 1,000 failed logins at concurrency 50, each from its own client:
#      memory before, at the peak, and 30 s after;
#   2. 10,000 requests with made-up methods: /metrics and memory;
#   3. 1,000 connections that send half a request, or nothing, or go idle:
#      how many the server has closed after 5, 15 and 65 s;
#   4. with the file limit at 600, 700 idle connections, then /health;
#   5. SIGTERM with 100 half-sent requests open: how long until it exits;
#   6. 50 rounds of 1,000 connections opened and dropped: memory after each.
# Everything stays on 127.0.0.1. PARTS picks some, e.g. PARTS="1 4";
# CONFAB_BIN measures another build (an earlier one, say) the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${HOSTILE_PORT:-18081}"
work="$(mktemp -d)"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build --release -q -p confab -p confab-bench

start() { # files, extra env...
    local files=$1; shift
    rm -f "$work"/db*
    env DATABASE_URL="sqlite://$work/db" HOST=127.0.0.1 PORT="$port" RUST_LOG=warn "$@" \
        bash -c "ulimit -n $files && exec ${CONFAB_BIN:-target/release/confab} serve" >"$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "server did not start:" >&2; cat "$work/server.log" >&2; exit 1
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; }
hostile() { target/release/hostile --addr "127.0.0.1:$port" --pid "$server" "$@"; }

for part in ${PARTS:-1 2 3 4 5 6}; do
    case $part in
        1) start 4096 TRUSTED_PROXIES=127.0.0.1; sleep 2; hostile logins; stop ;;
        2) start 4096; hostile methods; stop ;;
        3) start 4096; hostile slow --connections 1000 --wait 65; stop ;;
        4) start 600; hostile flood --connections 700; stop ;;
        5) start 4096
           hostile hold --connections 100 --seconds 45 & holder=$!
           sleep 2
           began=$(date +%s.%N)
           kill -TERM "$server"; wait "$server" 2>/dev/null || true
           ended=$(date +%s.%N)
           echo "shutdown: exited $(awk "BEGIN { printf \"%.1f\", $ended - $began }") s after SIGTERM with 100 half-sent requests open (half with their headers in)"
           kill "$holder" 2>/dev/null || true ;;
        6) start 4096; hostile churn --rounds 50 --connections 1000; stop ;;
    esac
    echo
done
