#!/usr/bin/env bash
# The main job: builds the release binaries and walks through the vault CLI in a throw-away
# directory: create, add, bulk add, list, search, dashboard, key slots, media with a ranged read,
# disappearing messages and retention, root-key and device-key rotation, verify, and a wrong
# passphrase.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/system-deps.sh
ensure_system_deps

cargo build --release --workspace --locked
VAULT="$PWD/target/release/vault"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export VAULT_DIR="$WORK/vault"
export VAULT_PASSPHRASE="correct horse battery staple"

step() { printf '\n$ vault %s\n' "$*"; "$VAULT" "$@"; }

step init --device-key "$WORK/device.key"
step msg add --conversation family --sender alice --body "Dinner at eight? Bring the crème brûlée."
printf 'On my way\nRunning ten minutes late\nParking now\n' > "$WORK/lines.txt"
printf '\n$ vault msg add --conversation family --sender bob --stdin < lines.txt\n'
"$VAULT" msg add --conversation family --sender bob --stdin < "$WORK/lines.txt"
step msg list --conversation family
step search "creme brulee"
step --json search "late"
step --device-key "$WORK/device.key" status
step key list
head -c 3000000 /dev/urandom > "$WORK/video.bin"
printf '\n$ vault media add video.bin --conversation family --message 1\n'
MEDIA_ID="$("$VAULT" media add "$WORK/video.bin" --conversation family --message 1)"
echo "$MEDIA_ID"
step media list
step media get "$MEDIA_ID" "$WORK/seek.bin" --offset 1000000 --length 65536
cmp <(tail -c +1000001 "$WORK/video.bin" | head -c 65536) "$WORK/seek.bin" && echo "(the 64 KiB range matches the original)"
step msg add --conversation family --sender bob --body "this one disappears in 60 s" --expires-in 60
step retention set --max-age-days 365
step --device-key "$WORK/device.key" key rotate --root
step --device-key "$WORK/device.key" key rotate
step verify
printf '\n$ VAULT_PASSPHRASE=wrong vault status\n'
set +e
VAULT_PASSPHRASE=wrong "$VAULT" status
echo "(exit code $?: authentication failed)"
step status
set -e
printf '\nEvery file in the vault directory is encrypted or holds no secret:\n'
ls -l "$VAULT_DIR"
