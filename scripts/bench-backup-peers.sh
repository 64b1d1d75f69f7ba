#!/usr/bin/env bash
# Backup and restore of a vault holding 1 GiB of media, side by side with restic backing up the
# same plaintext to a local repository: wall time, peak memory (RSS) and bytes stored.
#
# Backups run once each. Restores run in PAIRS pairs per temperature, the vault first in odd pairs
# and restic first in even ones (on this machine a restore's time depends on what ran just before
# it, so each tool takes both places), the temperatures taking turns so that a machine
# whose speed drifts moves both alike: "warm"
# leaves the backup and the repository in the page cache; "cold" evicts every file of both from it
# (posix_fadvise DONTNEED, after a sync) before each timed run. The vault's restore is durable (it
# fsyncs every file before moving the vault into place); restic's is not, so each restic run is
# followed by a timed `sync` of the files it wrote, and the ratios are given against restic alone
# and against restic + sync: median (min-max) of the per-pair ratios vault/restic (below 1: the
# vault is faster). Each pair also times a floor: a plain durable copy of the backup's media
# objects (`cp` + `sync`, no cipher, no database), the bytes any durable restore has to write; its
# ratio to restic is the best ratio a durable restore could reach on this disk.
# Installs restic from Debian if missing (benchmarks only; not part of CI).
# Usage: scripts/bench-backup-peers.sh [MEDIA_MIB] [PAIRS]      (default 1024, 4)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
pairs=${2:-4}
if ! command -v restic >/dev/null || [ ! -x /usr/bin/time ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic time
fi
. scripts/lib/release-build.sh
build_release_binaries >/dev/null
VAULT="$RELEASE_DIR/vault"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export VAULT_DIR="$work/vault" VAULT_PASSPHRASE="bench passphrase" RESTIC_PASSWORD="bench passphrase"

measure() { # LABEL CMD... -> prints seconds and peak RSS
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/time.out" "$@" >/dev/null
    read -r secs kib <"$work/time.out"
    printf '%-34s %8.2f s   peak RSS %7.1f MiB\n' "$label" "$secs" "$(echo "$kib" | awk '{print $1/1024}')"
}
bytes() { du -sb "$1" | awk '{print $1}'; }

# The same plaintext for both: media files of 64 MiB and a text file of messages.
mkdir -p "$work/plain"
files=$((mib / 64))
for i in $(seq 1 "$files"); do head -c $((64 << 20)) /dev/urandom >"$work/plain/media-$i.bin"; done
seq 1 100000 | sed 's/.*/message & with some ordinary chat text in it/' >"$work/plain/messages.txt"

"$VAULT" init >/dev/null
"$VAULT" msg add --conversation bench --sender me --stdin <"$work/plain/messages.txt" >/dev/null
for f in "$work"/plain/media-*.bin; do "$VAULT" media add "$f" >/dev/null; done
sync
echo "plaintext: $(bytes "$work/plain") bytes ($files media files of 64 MiB, 100,000 messages); machine: $(nproc) cores"

measure "vault backup run (first)" "$VAULT" backup run --dir "$work/vault-backup"
restic init --repo "$work/restic-repo" >/dev/null
measure "restic backup (first)" restic backup --repo "$work/restic-repo" "$work/plain"
echo "stored: vault $(bytes "$work/vault-backup") bytes, restic $(bytes "$work/restic-repo") bytes"
measure "vault backup run (no change)" "$VAULT" backup run --dir "$work/vault-backup"
measure "restic backup (no change)" restic backup --repo "$work/restic-repo" "$work/plain"

"$VAULT" backup export-key --dangerous "$work/key" >/dev/null
measure "vault backup restore (peak RSS)" env VAULT_DIR="$work/restored" "$VAULT" backup restore --backup-key-file "$work/key" --from-dir "$work/vault-backup"
rm -rf "$work/restored"
measure "restic restore (peak RSS)" restic restore latest --repo "$work/restic-repo" --target "$work/restic-restored"
rm -rf "$work/restic-restored"

evict() { # DIR...: drop the clean pages of every file under these directories from the page cache
    sync
    find "$@" -type f -print0 | python3 -c 'import os, sys
for path in sys.stdin.buffer.read().split(b"\0"):
    if path:
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)'
}
timed() { # CMD... -> seconds on stdout
    local start=$EPOCHREALTIME
    "$@" >/dev/null 2>&1
    python3 -c "print(f'{$EPOCHREALTIME - $start:.3f}')"
}
vault_restore() { env VAULT_DIR="$work/restored" "$VAULT" backup restore --backup-key-file "$work/key" --from-dir "$work/vault-backup"; }
restic_restore() { restic restore latest --repo "$work/restic-repo" --target "$work/restic-restored"; }
sync_restic_output() { find "$work/restic-restored" -type f -exec sync {} +; }
durable_copy() { mkdir "$work/floor" && cp "$work"/vault-backup/objects/media-* "$work/floor/" && sync "$work"/floor/*; }

echo
echo "restores: $pairs pairs per temperature, warm and cold in turn; odd pairs run the vault first, even pairs restic (then a sync of its output) first; the floor last"
run_vault() { # TEMPERATURE -> seconds
    sync
    [ "$1" = cold ] && evict "$work/vault-backup"
    timed vault_restore
    rm -rf "$work/restored"
}
run_restic() { # TEMPERATURE -> "seconds sync-seconds"
    sync
    [ "$1" = cold ] && evict "$work/restic-repo"
    local r s
    r=$(timed restic_restore)
    s=$(timed sync_restic_output)
    rm -rf "$work/restic-restored"
    echo "$r $s"
}
results=()
for pair in $(seq 1 "$pairs"); do
    for temperature in warm cold; do
        if [ $((pair % 2)) = 1 ]; then
            v=$(run_vault "$temperature")
            read -r r s < <(run_restic "$temperature")
        else
            read -r r s < <(run_restic "$temperature")
            v=$(run_vault "$temperature")
        fi
        sync
        [ "$temperature" = cold ] && evict "$work/vault-backup"
        f=$(timed durable_copy)
        rm -rf "$work/floor"
        echo "  $temperature pair $pair: vault $v s, restic $r s (+ sync $s s), floor (cp + sync of the media objects) $f s"
        results+=("$temperature $v $r $s $f")
    done
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [line.split() for line in sys.stdin if line.strip()]
print()
print("| restore | vault median s | restic median s | restic + sync median s | floor median s | vault/restic | vault/(restic + sync) | floor/restic | floor/(restic + sync) |")
print("|---|---|---|---|---|---|---|---|---|")
def spread(values):
    values = sorted(values)
    return f"{statistics.median(values):.2f}x ({values[0]:.2f}-{values[-1]:.2f})"
for temperature in ("warm", "cold"):
    own = [tuple(map(float, row[1:])) for row in rows if row[0] == temperature]
    med = lambda i: statistics.median(o[i] for o in own)
    print(f"| {temperature} | {med(0):.2f} | {med(1):.2f} | {statistics.median(r + s for _, r, s, _ in own):.2f} | {med(3):.2f} | "
          f"{spread(v / r for v, r, _, _ in own)} | {spread(v / (r + s) for v, r, s, _ in own)} | "
          f"{spread(f / r for _, r, _, f in own)} | {spread(f / (r + s) for _, r, s, f in own)} |")
'
