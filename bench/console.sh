#!/usr/bin/env bash
# The console's pages against a large database:
#   bash bench/console.sh            # SQLite
#   bash bench/console.sh postgres   # PostgreSQL (PG_ADMIN_URL, default postgres://root@127.0.0.1:5432/test)
# 1. Seeds a fresh database through the real write path: CONTACTS (100,000)
#    contacts each walk the product review survey for STEPS (6) signed
#    webhooks, and each webhook is answered, so the database holds
#    CONTACTS x STEPS x 2 messages (1,200,000), a run and a review record
#    a contact. (All of it is written today: the dashboard's range holds
#    every message, its worst case.)
# 2. Asks each console page ROUNDS (20) times, one request at a time, as a
#    logged-in admin, and prints each page's median and slowest time
#    (curl's time_total over loopback: the server's time and a little).
# SEED_ONLY=1 stops after the seed and prints the database's URL (the
# work directory is then kept); SEEDED=<that URL> times the pages of a
# database seeded so, without seeding again.
set -euo pipefail
cd "$(dirname "$0")/.."

backend="${1:-sqlite}"
contacts="${CONTACTS:-100000}"
steps="${STEPS:-6}"
rounds="${ROUNDS:-20}"
port="${BENCH_PORT:-18090}"
token="bench-auth-token"
work="$(mktemp -d)"
cleanup() {
    kill "${server:-0}" 2>/dev/null || true
    [[ -n "${SEED_ONLY:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -q -p confab -p confab-bench

case "$backend" in
    sqlite) db="sqlite://$work/console.db" ;;
    postgres)
        admin="${PG_ADMIN_URL:-postgres://root@127.0.0.1:5432/test}"
        db="${admin%/*}/confab_console"
        [[ -n "${SEEDED:-}" ]] ||
            psql "$admin" -qc "DROP DATABASE IF EXISTS confab_console" -qc "CREATE DATABASE confab_console" ;;
    *) echo "usage: bench/console.sh [sqlite|postgres]" >&2; exit 2 ;;
esac
base="http://127.0.0.1:$port"

start_server() {
    DATABASE_URL="$db" HOST=127.0.0.1 PORT="$port" TWILIO_AUTH_TOKEN="$token" RUST_LOG="${RUST_LOG:-warn}" \
        DEFAULT_FLOW=product_review target/release/confab serve >>"$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 100); do
        curl -sf "$base/ready" >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "server did not start:" >&2; cat "$work/server.log" >&2; exit 1
}
[[ -z "${SEEDED:-}" ]] || db="$SEEDED"
seed() {
    start_server
    echo "== $backend: seeding $contacts contacts x $steps review steps"
    seed_start=$(date +%s)
    target/release/confab-bench --url "$base" --auth-token "$token" --contacts "$contacts" \
        --messages $((contacts * steps)) --concurrency 128 --bodies bench/review_walk.txt --json >"$work/seed.json"
    echo "seeded in $(( $(date +%s) - seed_start )) s"
    kill "$server"; wait "$server" 2>/dev/null || true
    # PostgreSQL plans by its statistics, which autovacuum gathers after a
    # load; where it is off (as on this machine), gather them as it would.
    [[ $backend != postgres ]] || psql "$db" -qc "VACUUM ANALYZE"
}
[[ -n "${SEEDED:-}" ]] || seed
if [[ -n "${SEED_ONLY:-}" ]]; then
    echo "database: $db"
    exit 0
fi
# The seed's writes reach the disk before anything is timed, and the pages
# are asked of a server started afresh on the database.
sync
start_server

# (A database timed before has the user already.)
printf 'bench-password\n' | DATABASE_URL="$db" target/release/confab user add bench --role admin >/dev/null 2>&1 || true
session=$(curl -sf "$base/api/v1/auth/login" -H 'content-type: application/json' \
    -d '{"username": "bench", "password": "bench-password"}' | jq -r .access_token)
api() { curl -sf "$base/api/v1$1" -H "Authorization: Bearer $session"; }

echo "contacts: $(api "/contacts?limit=1" | jq -r '.items[0].id') (the newest id)"
contact=$(api "/contacts?order=activity&limit=1" | jq -r '.items[0].id')
run=$(api "/runs?limit=1" | jq -r '.items[0].id')
phone=$(api "/contacts/$contact" | jq -r '.phone')
search=${phone:5:4}
phone_tail=${phone:5}
today=$(date -u +%F)
month_ago=$(date -u -d '30 days ago' +%F)

pages=(
    "/console/inbox"
    "/console/inbox?search=$search"
    "/console/inbox/$contact"
    "/console/simulator"
    "/console/flows"
    "/console/flows/product_review"
    "/console/flows/product_review/edit"
    "/console/runs"
    "/console/runs?flow=product_review&status=completed"
    "/console/runs/$run"
    "/console/records"
    "/console/records/reviews"
    "/console/records/reviews?contact_number=%2B1555$phone_tail"
    "/console/records/reviews?user_name=Nobody"
    "/console/triggers"
    "/console/broadcast"
    "/console/dashboard"
    "/console/dashboard?from=$month_ago&to=$today"
    "/console/settings"
)

echo "== $backend: console pages, $rounds requests each, one at a time (ms)"
printf '%-52s %8s %8s %6s\n' page median slowest status
for page in "${pages[@]}"; do
    for _ in $(seq 1 "$rounds"); do
        curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -b "confab_session=$session" "$base$page"
    done | sort -k2 -n | awk -v page="$page" '
        { code[NR] = $1; t[NR] = $2 * 1000 }
        END {
            bad = ""
            for (i = 1; i <= NR; i++) if (code[i] != 200) bad = code[i]
            printf "%-52s %8.1f %8.1f %6s\n", page, t[int((NR + 1) / 2)], t[NR], bad == "" ? "200" : bad
        }'
done
# SQLite reads through a memory map: the database pages read count in RSS
# (once per connection that mapped them), though they are the OS's cache.
echo "server memory: $(awk '/RssAnon/ {a = int($2 / 1024)} /RssFile/ {f = int($2 / 1024)}
    END {print a " MiB of its own (RssAnon), " f " MiB of the database file mapped (RssFile)"}' "/proc/$server/status")"
