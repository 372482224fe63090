#!/usr/bin/env bash
# Runs the inbound-webhook benchmarks against a fresh `confab serve`:
#   bash bench/run.sh            # SQLite
#   bash bench/run.sh postgres   # PostgreSQL (PG_ADMIN_URL, default postgres://root@127.0.0.1:5432/test)
# 1. the messaging core: no bot (DEFAULT_FLOW=none), so each webhook is
#    verified, parsed, stored and acknowledged;
# 2. flows: every contact walks the product review survey (bench/review_walk.txt),
#    each webhook a flow step answered in TwiML;
# 2b. the same two over many bots (BOTS, default 100): each contact writes
#    to one of them (contact i to bot i mod BOTS), each bot with a Twilio
#    number and auth token of its own, made through the API;
# 3. a schedule for 10,000 contacts (SCHEDULE_CONTACTS): they write once,
#    then a `once` trigger starts a one-message flow for all of them while
#    webhooks come at 1,000/s; the sends go out through the outbox to a fake
#    Twilio API at SCHEDULE_SEND_RATE (80, Meta's default pace) per second,
#    the pace the schedule starts its audience at; the webhook latency
#    is measured before, during and after the schedule, and how long the
#    runs and the sends took;
# 4. the AI assistant: 1,000 contacts in conversation with ai_assistant, the
#    fake AI answering each after AI_DELAY_MS (1 s), answers going out through
#    the outbox to a fake Twilio API; webhook latency and memory over time.
# Each prints throughput (closed loop), latency at a fixed 1,000 messages/s
# (open loop, with each second's p99 and max, so that a few stalls can be
# told from a tail spread over the run) and the server's peak RSS.
# Everything stays on 127.0.0.1.
# 5. live consoles: the messaging core again, alternately with no console
#    open and with CONSOLES (50) logged-in inboxes holding the live stream
#    open and drawing their contact list again on each change (at most
#    every 2 s, as the page does); ROUNDS (4) rounds of one run each, each
#    run on a fresh database, and a summary of all; not in the default
#    PHASES (PHASES=live bash bench/run.sh).
# PHASES picks some of them, e.g. PHASES=ai bash bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

backend="${1:-sqlite}"
messages="${MESSAGES:-100000}"
contacts="${CONTACTS:-2000}"
concurrency="${CONCURRENCY:-128}"
port="${BENCH_PORT:-18080}"
token="bench-auth-token"
work="$(mktemp -d)"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release -q -p confab -p confab-bench

case "$backend" in
    sqlite) db="sqlite://$work/bench.db" ;;
    postgres)
        admin="${PG_ADMIN_URL:-postgres://root@127.0.0.1:5432/test}"
        psql "$admin" -qc "DROP DATABASE IF EXISTS confab_bench" -qc "CREATE DATABASE confab_bench"
        db="${admin%/*}/confab_bench" ;;
    *) echo "usage: bench/run.sh [sqlite|postgres]" >&2; exit 2 ;;
esac

# A fresh database for a phase, `confab_$1` on PostgreSQL (dashes as
# underscores), a file under the work directory on SQLite: sets `db`.
fresh_db() {
    case "$backend" in
        sqlite) db="sqlite://$work/$1.db" ;;
        postgres)
            local name="confab_${1//-/_}"
            psql "$admin" -qc "DROP DATABASE IF EXISTS $name" -qc "CREATE DATABASE $name"
            db="${admin%/*}/$name" ;;
    esac
}

run_server() {
    DATABASE_URL="$db" HOST=127.0.0.1 PORT="$port" TWILIO_AUTH_TOKEN="$token" RUST_LOG="${RUST_LOG:-warn}" \
        DEFAULT_FLOW="$1" \
        target/release/confab serve >"$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "server did not start:" >&2; cat "$work/server.log" >&2; exit 1
}

bench() { # title, extra bench flags...
    local title=$1; shift
    echo "== $backend, $title: throughput, $messages messages from $contacts contacts, $concurrency in flight"
    target/release/confab-bench --url "http://127.0.0.1:$port" --auth-token "$token" \
        --contacts "$contacts" --messages "$messages" --concurrency "$concurrency" --pid "$server" "$@"
    echo
    echo "== $backend, $title: latency at 1,000 messages/s for 20 s"
    target/release/confab-bench --url "http://127.0.0.1:$port" --auth-token "$token" \
        --contacts "$contacts" --messages 20000 --rate 1000 --duration 20 --pid "$server" --timeline "$@"
    echo
}

phases=" ${PHASES:-core flow bots schedule ai} "

if [[ $phases == *" core "* ]]; then
    run_server none
    bench "messaging core"
    kill "$server"; wait "$server" 2>/dev/null || true
fi

if [[ $phases == *" flow "* ]]; then
    run_server product_review
    bench "review flow steps" --bodies bench/review_walk.txt
    kill "$server"; wait "$server" 2>/dev/null || true
fi

# Bots made through the API, each with its own Twilio number and token
# (what confab-bench --bots signs with), answering with flow $1 (or none).
make_bots() {
    local flow=$1 key j
    key=$(DATABASE_URL="$db" target/release/confab key create bench-bots | tail -1)
    for j in $(seq 0 $((bots - 1))); do
        curl -sf "http://127.0.0.1:$port/api/v1/bots" -H "Authorization: Bearer $key" \
            -H 'content-type: application/json' -d "{\"name\": \"Bench $j\", \"slug\": \"bench-$j\",
                \"default_flow\": $flow, \"channels\": {\"twilio\": {
                \"account_sid\": \"AC00000000000000000000000000000000\", \"auth_token\": \"$token-$j\",
                \"number\": \"+1444$(printf %07d "$j")\"}}}" >/dev/null
    done
}

if [[ $phases == *" bots "* ]]; then
    bots="${BOTS:-100}"
    # PostgreSQL keeps no key file: the credentials are sealed with this one.
    export CONFAB_MASTER_KEY="${CONFAB_MASTER_KEY:-$(target/release/confab master-key new | tail -1)}"
    fresh_db bench-bots
    run_server none
    make_bots null
    bench "messaging core over $bots bots" --bots "$bots"
    kill "$server"; wait "$server" 2>/dev/null || true
    fresh_db bench-bots-flow
    run_server none
    make_bots '"product_review"'
    bench "review flow steps over $bots bots" --bodies bench/review_walk.txt --bots "$bots"
    kill "$server"; wait "$server" 2>/dev/null || true
fi

p99_of() { jq -r '.latency_ms.p99' "$1"; }

if [[ $phases == *" live "* ]]; then
    consoles="${CONSOLES:-50}"
    rounds="${ROUNDS:-4}"
    : >"$work/live.txt"
    # This box's two cores are shared with its neighbours: one run's
    # throughput can differ from the next's by a fifth. So each round runs
    # once with no console and once with them, every run on a fresh
    # database with the same 50,000 messages in it, the rounds in turn in
    # the other order (0 and 50, then 50 and 0); the summary compares the
    # means and medians of all.
    for round in $(seq 1 "$rounds"); do
        order="0 $consoles"
        [[ $((round % 2)) == 1 ]] || order="$consoles 0"
        for open in $order; do
            fresh_db "bench-live-$round-$open"
            run_server none
            printf 'bench-password\n' | DATABASE_URL="$db" target/release/confab user add bench-console --role admin >/dev/null
            # A session for each console: fifty agents, each logged in.
            sessions=$(for _ in $(seq 1 "$open"); do
                curl -sf "http://127.0.0.1:$port/api/v1/auth/login" -H 'content-type: application/json' \
                    -d '{"username": "bench-console", "password": "bench-password"}' | jq -r .access_token
            done | paste -sd,)
            target/release/confab-bench --url "http://127.0.0.1:$port" --auth-token "$token" \
                --contacts "$contacts" --messages 50000 --concurrency "$concurrency" --json >/dev/null
            if [[ $open -gt 0 ]]; then
                target/release/consoles --addr "127.0.0.1:$port" --session "$sessions" \
                    --consoles "$open" --duration 3600 >"$work/consoles.txt" &
                watchers=$!
                sleep 1
            fi
            echo "== $backend, live round $round, $open consoles open"
            target/release/confab-bench --url "http://127.0.0.1:$port" --auth-token "$token" \
                --contacts "$contacts" --messages "$messages" --concurrency "$concurrency" --pid "$server" --json >"$work/full.json"
            target/release/confab-bench --url "http://127.0.0.1:$port" --auth-token "$token" \
                --contacts "$contacts" --messages 20000 --rate 1000 --duration 20 --pid "$server" --json >"$work/paced.json"
            jq -rn --argjson open "$open" --slurpfile f "$work/full.json" --slurpfile p "$work/paced.json" \
                '[$open, ($f[0].messages_per_s | round), (1e7 * $f[0].server_cpu_s / $f[0].ok | round) / 10,
                  $p[0].latency_ms.p50, $p[0].latency_ms.p99, (1000 * $p[0].server_cpu_s / 20 | round)] | @tsv' | tee -a "$work/live.txt"
            if [[ $open -gt 0 ]]; then
                # The consoles' own CPU time: on this box it is taken from the server's.
                ticks=$(awk '{print $14 + $15}' "/proc/$watchers/stat")
                kill -TERM "$watchers"; wait "$watchers" || true
                cat "$work/consoles.txt"
                echo "consoles' own CPU: $(awk -v t="$ticks" 'BEGIN {printf "%.2f", t / 100}') s"
            fi
            kill "$server"; wait "$server" 2>/dev/null || true
        done
    done
    echo
    echo "== $backend, live consoles: $rounds runs each (columns as above: open consoles, then"
    echo "   at full speed msg/s and server CPU us a message, at 1,000 msg/s p50 and p99 ms and server CPU ms a second)"
    python3 - "$work/live.txt" <<'PY'
import statistics as st, sys
runs = {}
for line in open(sys.argv[1]):
    cols = line.split()
    runs.setdefault(int(cols[0]), []).append([float(c) for c in cols[1:]])
print(f"{'consoles':>8} {'msg/s mean':>11} {'median':>8} {'CPU us/msg':>10} {'p50 ms':>7} {'p99 median':>10} {'p99 mean':>9} {'CPU ms/s':>8}")
for open_, rs in sorted(runs.items()):
    col = lambda i: [r[i] for r in rs]
    print(f"{open_:>8} {st.mean(col(0)):>11.0f} {st.median(col(0)):>8.0f} {st.mean(col(1)):>10.1f} "
          f"{st.median(col(2)):>7.2f} {st.median(col(3)):>10.2f} {st.mean(col(3)):>9.2f} {st.mean(col(4)):>8.0f}")
PY
fi

if [[ $phases == *" schedule "* ]]; then
    audience="${SCHEDULE_CONTACTS:-10000}"
    send_rate="${SCHEDULE_SEND_RATE:-80}"
    seconds=30
    fakes_port=$((port + 11))
    target/release/fake-providers --port "$fakes_port" --delay-ms 0 &
    fakes=$!
    trap 'kill "${server:-0}" "${fakes:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
    fresh_db bench-schedule
    TWILIO_ACCOUNT_SID=AC00000000000000000000000000000000 TWILIO_WHATSAPP_NUMBER=whatsapp:+14155238886 \
        TWILIO_API_URL="http://127.0.0.1:$fakes_port" TWILIO_SEND_RATE="$send_rate" run_server none
    api="http://127.0.0.1:$port/api/v1"
    key=$(DATABASE_URL="$db" target/release/confab key create bench-schedule | tail -1)
    # Each contact writes once: the 24-hour window is open for all of them.
    target/release/confab-bench --url "http://127.0.0.1:$port" --auth-token "$token" \
        --contacts "$audience" --messages "$audience" --concurrency 1 --json >"$work/seed.json"
    audience=$(jq .ok "$work/seed.json")
    curl -sf "$api/flows" -H "Authorization: Bearer $key" -H 'content-type: application/json' \
        -d '{"id": "announce", "nodes": [{"id": "a", "type": "end", "text": "We open at 9 on Monday."}]}' >/dev/null
    webhooks() { # the JSON file to write
        target/release/confab-bench --url "http://127.0.0.1:$port" --auth-token "$token" \
            --contacts 2000 --messages $((1000 * seconds)) --rate 1000 --duration "$seconds" --pid "$server" --json >"$1"
        jq -c '.latency_ms' "$1"
    }
    echo "== $backend, webhook latency at 1,000 messages/s for $seconds s, no schedule"
    webhooks "$work/quiet.json"
    at=$(date -u -d '+4 seconds' +%Y-%m-%dT%H:%M:%S)
    trigger=$(curl -sf "$api/triggers" -H "Authorization: Bearer $key" -H 'content-type: application/json' \
        -d "{\"name\": \"Opening hours\", \"flow_id\": \"announce\", \"trigger_type\": \"schedule\",
             \"schedule_type\": \"once\", \"schedule_at\": \"$at\", \"schedule_timezone\": \"UTC\",
             \"audience\": {\"all\": true}}" | jq .id)
    started=$(date +%s.%N)
    echo "== $backend, the same while a schedule starts a flow for $audience contacts (due $at UTC) and the outbox sends at $send_rate/s"
    webhooks "$work/busy.json"
    runs=0
    for _ in $(seq 1 1200); do
        runs=$(curl -sf "$api/triggers/statistics" -H "Authorization: Bearer $key" | jq '.total.runs_started')
        [[ $runs -ge $audience ]] && break
        sleep 0.5
    done
    runs_done=$(date +%s.%N)
    sends=0
    for _ in $(seq 1 600); do
        sends=$(curl -s "http://127.0.0.1:$fakes_port/stats" | jq .sends)
        [[ $sends -ge $audience ]] && break
        sleep 0.5
    done
    sends_done=$(date +%s.%N)
    echo "schedule        trigger $trigger: $runs runs started by $(awk -v a="$started" -v b="$runs_done" 'BEGIN { printf "%.1f", b - a }') s after it was made (due 4 s after), $sends sends by $(awk -v a="$started" -v b="$sends_done" 'BEGIN { printf "%.1f", b - a }') s"
    # Without a schedule again, after it: the machine's drift over the run
    # shows, and the figure with the schedule is held against both.
    echo "== $backend, the same again once the schedule is done"
    webhooks "$work/after.json"
    before=$(p99_of "$work/quiet.json") with=$(p99_of "$work/busy.json") after=$(p99_of "$work/after.json")
    echo "p99             $before ms before and $after ms after the schedule, $with ms during it: $(awk -v a="$before" -v c="$after" -v b="$with" 'BEGIN { printf "%+.0f%%", (b - (a + c) / 2) * 100 / ((a + c) / 2) }') against their mean"
    echo
    kill "$server" "$fakes"; wait "$server" "$fakes" 2>/dev/null || true
fi

[[ $phases == *" ai "* ]] || exit 0
fakes_port=$((port + 10))
target/release/fake-providers --port "$fakes_port" --delay-ms "${AI_DELAY_MS:-1000}" &
fakes=$!
trap 'kill "${server:-0}" "${fakes:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
export OPENAI_BASE_URL="http://127.0.0.1:$fakes_port/v1" OPENAI_API_KEY=bench-key \
    TWILIO_ACCOUNT_SID=AC00000000000000000000000000000000 TWILIO_WHATSAPP_NUMBER=whatsapp:+14155238886 \
    TWILIO_API_URL="http://127.0.0.1:$fakes_port" TWILIO_SEND_RATE=5000 AI_CONCURRENCY="${AI_CONCURRENCY:-512}"
# A database of its own: the earlier phases' contacts are in the review survey.
fresh_db bench-ai
run_server ai_assistant
ai_contacts="${AI_CONTACTS:-1000}"
ai_seconds="${AI_SECONDS:-30}"
cpu_seconds() { awk '{printf "%.1f", ($14 + $15) / 100}' "/proc/$1/stat"; }
for ai_rate in ${AI_RATES:-100 250 500}; do
    echo "== $backend, AI assistant: $ai_contacts conversations, AI answers after ${AI_DELAY_MS:-1000} ms, webhooks at $ai_rate/s for $ai_seconds s"
    cpu_before=$(cpu_seconds "$server")
    target/release/confab-bench --url "http://127.0.0.1:$port" --auth-token "$token" \
        --contacts "$ai_contacts" --messages $((ai_rate * ai_seconds)) --rate "$ai_rate" --duration "$ai_seconds" --pid "$server"
    sleep 3
    echo "server CPU      $(awk -v a="$cpu_before" -v b="$(cpu_seconds "$server")" -v t="$ai_seconds" 'BEGIN { printf "%.0f%% of one core", (b - a) * 100 / (t + 3) }')"
    echo "fakes           $(curl -s "http://127.0.0.1:$fakes_port/stats")"
    echo
done
