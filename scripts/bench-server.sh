#!/usr/bin/env bash
# HTTP benchmarks of the backup server on loopback, side by side with nginx:
#   - 4 KiB object GET, 32 keep-alive connections (wrk), the server on its default local store
#     (fsync on) and on the in-memory store, nginx serving the same 4 KiB file; in ROUNDS rounds
#     of nginx, local, memory (so a machine whose speed drifts moves all three of a round alike),
#     each ratio the median (min-max) of the per-round ratios to that round's nginx;
#   - 4 KiB object PUT on both stores (once each);
#   - server RSS while uploading one 1 GiB object.
# Installs wrk and nginx from Debian if missing (benchmarks only; not part of CI).
# Usage: scripts/bench-server.sh [SECONDS] [ROUNDS]     (default 10 s per wrk run, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light
fi
. scripts/lib/release-build.sh
build_release_binaries >/dev/null
bin=$RELEASE_DIR/backup-server
work=$(mktemp -d)
. scripts/lib/backup-servers.sh
pids=() # nginx
cleanup() {
    stop_backup_servers
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

start_server() { # NAME ARGS... -> sets url (and SERVER_PID); not in $(...): see scripts/lib/backup-servers.sh
    local name=$1; shift
    start_backup_server "$bin" "$work/$name" "$@"
    url=$SERVER_URL
}

token_for() { # URL -> device token
    echo "benchmark password" | "$RELEASE_DIR/examples/enrol_device" "$1" "bench-$RANDOM$RANDOM"
}

head -c 4096 /dev/urandom >"$work/4k.bin"
cat >"$work/put.lua" <<'LUA'
local counter = 0
local body
local thread_id = 0
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
function init(args)
  local f = io.open(os.getenv("BENCH_BODY"), "rb"); body = f:read("*all"); f:close()
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
  wrk.headers["Content-Type"] = "application/octet-stream"
end
function request()
  counter = counter + 1
  return wrk.format("PUT", "/v1/objects/w" .. tid .. "-" .. counter .. "-" .. os.time(), nil, body)
end
LUA

report() { # LABEL wrk-output
    local label=$1 out=$2
    local rps p99
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    local non2xx
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    printf '%-44s %12s req/s   p99 %-9s %s\n' "$label" "$rps" "$p99" "${non2xx:+non-2xx: $non2xx}"
}

rps_of() { awk '/Requests\/sec/ {print $2}' <<<"$1"; }

mkdir -p "$work/nginx/html" "$work/nginx/logs"
cp "$work/4k.bin" "$work/nginx/html/get-target"
# nginx workers run as an unprivileged user: let them read the file.
chmod a+rx "$work" "$work/nginx" "$work/nginx/html"
chmod a+r "$work/nginx/html/get-target"
nginx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$nginx_port; root $work/nginx/html; }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
nginx_url="http://127.0.0.1:$nginx_port/get-target"

declare -A url_of token_of
for store in local memory; do
    if [ "$store" = memory ]; then start_server mem --store memory://; else start_server local; fi
    url_of[$store]=$url
    token_of[$store]=$(token_for "$url")
    curl -sf -X PUT -H "Authorization: Bearer ${token_of[$store]}" --data-binary @"$work/4k.bin" "$url/v1/objects/get-target" >/dev/null
done
sleep 0.5

echo "wrk: 2 threads, 32 connections, ${secs}s per run, $rounds rounds of nginx, local, memory; machine: $(nproc) cores"
rows=()
for round in $(seq 1 "$rounds"); do
    out=$(wrk -t2 -c32 -d"${secs}s" --latency "$nginx_url")
    report "round $round: nginx GET 4 KiB static file" "$out"
    line="$(rps_of "$out")"
    for store in local memory; do
        out=$(wrk -t2 -c32 -d"${secs}s" --latency -H "Authorization: Bearer ${token_of[$store]}" "${url_of[$store]}/v1/objects/get-target")
        report "round $round: backup-server GET 4 KiB ($store store)" "$out"
        line="$line $(rps_of "$out")"
    done
    rows+=("$line")
done
printf '%s\n' "${rows[@]}" | python3 -c '
import statistics, sys
rows = [[float(x) for x in line.split()] for line in sys.stdin if line.strip()]
print()
print("| run | requests/s, median | ratio to nginx: median (min-max) of the rounds |")
print("|---|---|---|")
print(f"| nginx GET, static file | {statistics.median(r[0] for r in rows):,.0f} | 1 |")
for i, store in ((1, "default local store"), (2, "in-memory store")):
    ratios = sorted(r[i] / r[0] for r in rows)
    print(f"| backup-server GET, {store} | {statistics.median(r[i] for r in rows):,.0f} | "
          f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f}) |")
'
echo
for store in local memory; do
    out=$(BENCH_TOKEN=${token_of[$store]} BENCH_BODY="$work/4k.bin" wrk -t2 -c32 -d"${secs}s" --latency -s "$work/put.lua" "${url_of[$store]}")
    report "backup-server PUT 4 KiB ($store store)" "$out"
done

echo
echo "RSS while uploading one 1 GiB object (default local store):"
start_server rss
pid=$SERVER_PID
token=$(token_for "$url")
head -c $((1 << 30)) /dev/urandom >"$work/1g.bin"
curl -sf -X PUT -H "Authorization: Bearer $token" --data-binary @"$work/4k.bin" "$url/v1/objects/warm-up" >/dev/null
before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
start=$(date +%s.%N)
curl -sf -T "$work/1g.bin" -H "Authorization: Bearer $token" "$url/v1/objects/one-gib" >/dev/null
end=$(date +%s.%N)
peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
awk -v b="$before" -v p="$peak" -v s="$start" -v e="$end" 'BEGIN {
    printf "RSS before %d KiB, peak %d KiB, peak - before = %.1f MiB; upload took %.1f s (%.0f MiB/s)\n",
        b, p, (p - b) / 1024, e - s, 1024 / (e - s) }'
stored=$(curl -sfI -H "Authorization: Bearer $token" "$url/v1/objects/one-gib" | awk 'tolower($1) == "content-length:" {print $2}' | tr -d '\r')
echo "stored size: $stored bytes"
