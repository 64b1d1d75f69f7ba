#!/usr/bin/env bash
# Media encryption against a peer, side by side on the same 1 GiB file: `vault media add/get`
# (release build) and `age` (Debian's age 1.1.1, X25519 recipient, so no scrypt cost), timed with
# hyperfine; peak memory with GNU time. Usage: scripts/bench-media-peers.sh [MiB] [DIR]
# DIR defaults to /dev/shm (cipher-bound); give a disk directory to include the disk.
set -euo pipefail
cd "$(dirname "$0")/.."
MIB="${1:-1024}"
BASE="${2:-/dev/shm}"
for tool in age age-keygen hyperfine /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install age hyperfine time)" >&2; exit 1; }
done
. scripts/lib/release-build.sh
build_release_binaries >/dev/null
VAULT="$RELEASE_DIR/vault"
WORK="$(mktemp -d "$BASE/media-peers.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export VAULT_DIR="$WORK/vault" VAULT_PASSPHRASE="bench passphrase"
"$VAULT" --device-key "$WORK/device.key" init >/dev/null
head -c "$((MIB << 20))" /dev/urandom > "$WORK/input.bin"
age-keygen -o "$WORK/age.key" 2>/dev/null
RECIPIENT="$(age-keygen -y "$WORK/age.key")"
DK=(--device-key "$WORK/device.key")

echo "== encrypt ${MIB} MiB in $BASE"
hyperfine --warmup 1 --runs 5 --export-markdown "$WORK/encrypt.md" \
    --prepare "rm -f $WORK/out.age" \
    -n "vault media add" "$VAULT ${DK[*]} media add $WORK/input.bin" \
    -n "age -e" "age -r $RECIPIENT -o $WORK/out.age $WORK/input.bin"
cat "$WORK/encrypt.md"
ID="$("$VAULT" "${DK[@]}" media add "$WORK/input.bin")"
age -r "$RECIPIENT" -o "$WORK/out.age" "$WORK/input.bin"

echo "== decrypt ${MIB} MiB in $BASE"
hyperfine --warmup 1 --runs 5 --export-markdown "$WORK/decrypt.md" \
    --prepare "rm -f $WORK/plain.vault $WORK/plain.age" \
    -n "vault media get" "$VAULT ${DK[*]} media get $ID $WORK/plain.vault" \
    -n "age -d" "age -d -i $WORK/age.key -o $WORK/plain.age $WORK/out.age"
cat "$WORK/decrypt.md"

echo "== peak memory (max RSS, KiB)"
rss() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1; }
BASELINE="$(rss "$VAULT" "${DK[@]}" status)"
rm -f "$WORK/plain.vault"
IMPORT="$(rss "$VAULT" "${DK[@]}" media add "$WORK/input.bin")"
EXPORT="$(rss "$VAULT" "${DK[@]}" media get "$ID" "$WORK/plain.vault")"
echo "vault status (baseline):  $BASELINE"
echo "vault media add ${MIB} MiB: $IMPORT (+$((IMPORT - BASELINE)) KiB)"
echo "vault media get ${MIB} MiB: $EXPORT (+$((EXPORT - BASELINE)) KiB)"
cmp -s "$WORK/input.bin" "$WORK/plain.vault" && echo "round trip: identical"
