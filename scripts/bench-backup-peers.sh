#!/usr/bin/env bash
# Backup and restore of a vault holding 1 GiB of media, side by side with restic backing up the
# same plaintext to a local repository: wall time, peak memory (RSS) and bytes stored.
# Installs restic from Debian if missing (benchmarks only; not part of CI).
# Usage: scripts/bench-backup-peers.sh [MEDIA_MIB]        (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
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
measure "vault backup restore" env VAULT_DIR="$work/restored" "$VAULT" backup restore --backup-key-file "$work/key" --from-dir "$work/vault-backup"
measure "restic restore" restic restore latest --repo "$work/restic-repo" --target "$work/restic-restored"
