#!/usr/bin/env bash
# The cost of the mirrored backup (ADR 0016 (c)): `vault backup run` with one guardian (data server
# only) against two guardians (data server + mirror, synced before and after the run), side by side
# in one run: PAIRS pairs (default 5, after one warm-up pair that is not counted), each pair
#   - a first backup of a fresh vault and account with 1 guardian, then the same with 2,
#   - an incremental backup of each after appending 1 % new messages, 1 guardian, then 2.
# Both vaults of a pair are copies of one vault (MESSAGES messages, default 20,000, and MEDIA_MIB of
# random media in 4 MiB items, default 64), so they back up the same content. Two release
# backup-servers on loopback, local stores (fsync on), rate limits off; server A is the data server
# in both arms, B the mirror.
#
# Per run: wall time of the `vault --json backup run` process (unlock, sync, writes, head copies,
# event fetch), the run's own `duration_ms` (the write phase: objects to the data server and, with a
# mirror, to it too; no syncs), bytes received by the servers (`backup_object_bytes_received_total`
# on /metrics, summed over A and B, read before and after), the run's `uploaded_bytes` (the data
# server's share), bytes the servers sent (`backup_object_bytes_sent_total`) and the /v1 requests
# they answered, and (within the run) bytes received / uploaded_bytes. Prints each run, then per
# figure the median of each arm and the median (min–max) of the per-pair ratios 2 guardians /
# 1 guardian. Each run is checked: no mirror problems, both holders fully hold the new generation
# (2 guardians), nothing written to B (1 guardian).
# Usage: scripts/bench-mirror.sh [PAIRS] [MESSAGES] [MEDIA_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-5}
messages=${2:-20000}
media_mib=${3:-64}
warmup=1
for n in "$pairs" "$messages" "$media_mib"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [PAIRS] [MESSAGES] [MEDIA_MIB] (positive integers)" >&2; exit 2; }
done
. scripts/lib/release-build.sh
build_release_binaries >/dev/null
VAULT="$RELEASE_DIR/vault"
work=$(mktemp -d)
. scripts/lib/backup-servers.sh
trap 'stop_backup_servers; rm -rf "$work"' EXIT

# Not a=$(start_backup_server …): the server's PID must be recorded in this shell.
start_backup_server "$RELEASE_DIR/backup-server" "$work/server-a"
a=$SERVER_URL
start_backup_server "$RELEASE_DIR/backup-server" "$work/server-b"
b=$SERVER_URL
export VAULT_PASSPHRASE="bench passphrase" VAULT_BACKUP_PASSWORD="bench backup password"
unset VAULT_DIR VAULT_RECOVERY_CODE VAULT_LOGIN_TICKET

# The template vault: MESSAGES chat messages and MEDIA_MIB of media in 4 MiB items.
line() { sed 's/.*/message & with some ordinary chat text in it, see you at eight?/'; }
seq 1 "$messages" | line >"$work/messages.txt"
seq $((messages + 1)) $((messages + messages / 100)) | line >"$work/new-messages.txt"
"$VAULT" --vault "$work/template" init >/dev/null
"$VAULT" --vault "$work/template" msg add --conversation bench --sender me --stdin <"$work/messages.txt" >/dev/null
for i in $(seq 1 $((media_mib / 4))); do
    head -c $((4 << 20)) /dev/urandom >"$work/media.bin"
    "$VAULT" --vault "$work/template" media add --conversation bench "$work/media.bin" >/dev/null
done
rm "$work/media.bin"

metrics() { # -> "received sent requests", summed over both servers
    local url
    for url in "$a" "$b"; do curl -sf "$url/metrics"; done | awk '
        $1 == "backup_object_bytes_received_total" { r += $2 }
        $1 == "backup_object_bytes_sent_total" { s += $2 }
        $1 ~ /^backup_http_requests_total\{route="\/v1\// { q += $2 }
        END { printf "%.0f %.0f %.0f\n", r, s, q }'  # not %d: mawk caps it at 2^31 - 1
}
b_received() { curl -sf "$b/metrics" | awk '$1 == "backup_object_bytes_received_total" { print $2 }'; }

# run PAIR ARM PHASE VAULT_DIR: one timed `vault --json backup run`, one row in $work/runs.tsv.
run() {
    local pair=$1 arm=$2 phase=$3 dir=$4 before after b0 t0 t1
    sync
    read -r -a before <<<"$(metrics)"
    b0=$(b_received)
    t0=$EPOCHREALTIME
    "$VAULT" --vault "$dir" --json backup run >"$work/run.json"
    t1=$EPOCHREALTIME
    read -r -a after <<<"$(metrics)"
    python3 - "$work/run.json" "$arm" "$b0" "$(b_received)" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
arm, b0, b1 = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if r["mirror_problems"] or r["head_copies_failed"]:
    sys.exit(f"mirror problems or failed head copies: {r['mirror_problems']} {r['head_copies_failed']}")
if arm == 1 and (r["holders"] or b1 != b0):
    sys.exit("one guardian, yet a mirror was written")
if arm == 2 and (len(r["holders"]) != 2 or any(h["missing"] or h["generation"] != r["generation"] for h in r["holders"])):
    sys.exit(f"a holder does not fully hold generation {r['generation']}: {r['holders']}")
PY
    local wall uploaded duration
    wall=$(awk -v s="$t0" -v e="$t1" 'BEGIN { printf "%.3f", e - s }')
    read -r uploaded duration < <(python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["uploaded_bytes"], r["duration_ms"])' "$work/run.json")
    local received=$((after[0] - before[0])) sent=$((after[1] - before[1])) requests=$((after[2] - before[2]))
    if [ "$pair" -gt 0 ]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pair" "$arm" "$phase" "$wall" "$duration" \
            "$received" "$uploaded" "$sent" "$requests" >>"$work/runs.tsv"
    fi
    printf 'pair %-2s %-11s %-12s %6.2f s wall, write phase %5d ms, received %11d B (run: uploaded %11d B), sent %9d B, %5d requests\n' \
        "$([ "$pair" -gt 0 ] && echo "$pair" || echo "w")" "$phase" "$([ "$arm" = 1 ] && echo "1 guardian:" || echo "2 guardians:")" "$wall" "$duration" "$received" "$uploaded" "$sent" "$requests"
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); servers on loopback, local stores on $(df --output=source "$work" | tail -1)"
echo "vault: $messages messages, $((media_mib / 4)) media items of 4 MiB ($media_mib MiB); incremental: $((messages / 100)) new messages"
echo "pairs: $pairs counted after $warmup warm-up pair; A = 1 guardian ($a), B = 2 guardians ($a, $b: data server + mirror)"
: >"$work/runs.tsv"
for pair in $(seq $((1 - warmup)) "$pairs"); do
    for arm in 1 2; do
        dir="$work/vault-$pair-$arm"
        cp -a "$work/template" "$dir"
        servers=(--server "$a")
        [ "$arm" = 2 ] && servers+=(--server "$b")
        "$VAULT" --vault "$dir" backup setup "${servers[@]}" --account "bench-$pair-$arm" >/dev/null
    done
    run "$pair" 1 first "$work/vault-$pair-1"
    run "$pair" 2 first "$work/vault-$pair-2"
    for arm in 1 2; do
        "$VAULT" --vault "$work/vault-$pair-$arm" msg add --conversation bench --sender me --stdin \
            <"$work/new-messages.txt" >/dev/null
    done
    run "$pair" 1 incremental "$work/vault-$pair-1"
    run "$pair" 2 incremental "$work/vault-$pair-2"
    rm -rf "$work/vault-$pair-1" "$work/vault-$pair-2"
done

echo
python3 - "$work/runs.tsv" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
figures = [("wall time, s", 3, "{:.2f}"), ("write phase, ms", 4, "{:.0f}"),
           ("bytes received (A + B)", 5, "{:,.0f}"), ("uploaded_bytes (run, data server)", 6, "{:,.0f}"),
           ("received / uploaded_bytes", 9, "{:.3f}"),
           ("bytes sent (A + B)", 7, "{:,.0f}"), ("requests (A + B)", 8, "{:.0f}")]
runs = {}
for r in rows:
    # Within one run: what the servers received per byte the run reports for the data server.
    r.append(float(r[5]) / float(r[6]) if float(r[6]) > 0 else 0.0)
    runs[(r[2], int(r[1]), int(r[0]))] = r
pairs = sorted({int(r[0]) for r in rows})
print(f"medians over {len(pairs)} pairs; ratio = 2 guardians / 1 guardian, median (min-max) of the per-pair ratios")
print(f"{'backup':<12} {'figure':<34} {'1 guardian':>14} {'2 guardians':>14}  {'ratio':>6} {'(min-max)':>14}")
for phase in ("first", "incremental"):
    for name, col, fmt in figures:
        one = [float(runs[(phase, 1, p)][col]) for p in pairs]
        two = [float(runs[(phase, 2, p)][col]) for p in pairs]
        ratios = [t / o for o, t in zip(one, two) if o > 0]
        ratio = f"{statistics.median(ratios):6.2f} ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else f"{'-':>6}"
        print(f"{phase:<12} {name:<34} {fmt.format(statistics.median(one)):>14} {fmt.format(statistics.median(two)):>14}  {ratio}")
PY
