#!/usr/bin/env bash
# The main job: builds the release binaries, walks through the vault CLI in a throw-away
# directory (create, add, bulk add, list, search, dashboard, key slots, media with a ranged read,
# disappearing messages and retention, root-key and device-key rotation, verify, a wrong
# passphrase), then runs the backup server on its embedded default (no arguments: 127.0.0.1:8371,
# a local data directory) and talks to it: health, an OPAQUE registration and login, a device
# token, an object round trip; then the vault's backup and recovery through it: setup with a
# recovery code, a backup, the phone "lost", a restore on a new device with the password and the
# recovery code; metrics, and a graceful stop.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/system-deps.sh
ensure_system_deps

cargo build --release --workspace --locked
cargo build --release --locked -p backup-server --example enrol_device
VAULT="$PWD/target/release/vault"
SERVER="$PWD/target/release/backup-server"
ENROL="$PWD/target/release/examples/enrol_device"
WORK="$(mktemp -d)"
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
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

printf '\n== The backup server on its embedded default ==\n'
printf '\n$ backup-server        # no arguments: 127.0.0.1:8371, data in ./backup-server-data\n'
mkdir -p "$WORK/server"
(cd "$WORK/server" && exec "$SERVER") >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do
    grep -q "OPAQUE server key fingerprint" "$WORK/server.out" 2>/dev/null && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "the backup server did not start (is port 8371 in use?):" >&2
        cat "$WORK/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
cat "$WORK/server.out"
URL=http://127.0.0.1:8371
printf '\n$ curl %s/healthz\n' "$URL"
curl -sf "$URL/healthz"
printf '\n$ curl %s/v1/objects        # no token\n' "$URL"
curl -s "$URL/v1/objects"; echo
printf '\n$ enrol_device %s demo-user   # OPAQUE registration and login, then a device token\n' "$URL"
TOKEN="$(echo "demo password" | "$ENROL" "$URL" demo-user)"
echo "device token: ${TOKEN:0:12}… (shown once; the server keeps only a keyed hash)"
head -c 100000 /dev/urandom >"$WORK/pack.bin"
printf '\n$ curl -X PUT --data-binary @pack.bin %s/v1/objects/pack-0001\n' "$URL"
curl -sf -o /dev/null -w 'HTTP %{http_code}\n' -X PUT -H "Authorization: Bearer $TOKEN" --data-binary @"$WORK/pack.bin" "$URL/v1/objects/pack-0001"
printf '\n$ curl -X PUT ... pack-0001 again   # objects are write-once\n'
curl -s -X PUT -H "Authorization: Bearer $TOKEN" --data-binary @"$WORK/pack.bin" "$URL/v1/objects/pack-0001"; echo
printf '\n$ curl %s/v1/objects\n' "$URL"
curl -sf -H "Authorization: Bearer $TOKEN" "$URL/v1/objects"; echo
curl -sf -H "Authorization: Bearer $TOKEN" "$URL/v1/objects/pack-0001" | cmp - "$WORK/pack.bin" && echo "(the object reads back byte for byte)"

printf '\n== Backup and recovery of the vault through that server ==\n'
export VAULT_BACKUP_PASSWORD="a long backup password"
printf '\n$ vault backup setup --server %s --account demo-phone   # 2 of {server, recovery code}\n' "$URL"
"$VAULT" backup setup --server "$URL" --account demo-phone | tee "$WORK/setup.txt"
CODE="$(sed -n '/^recovery code/{n;s/^ *//;p;}' "$WORK/setup.txt")"
step backup run
step msg add --conversation family --sender alice --body "Added after the first backup"
step backup run
step backup list
step backup verify --read-data
printf '\n$ rm -rf "$VAULT_DIR"          # the phone is lost\n'
rm -rf "$VAULT_DIR"
export VAULT_DIR="$WORK/new-phone" VAULT_PASSPHRASE="the new phone's passphrase"
printf '\n$ vault restore --server %s --account demo-phone --recovery-code "$CODE"\n' "$URL"
"$VAULT" restore --server "$URL" --account demo-phone --recovery-code "$CODE"
step msg list --conversation family
step media list
step status
printf '\n$ VAULT_BACKUP_PASSWORD=wrong vault restore ... --key-only\n'
set +e
VAULT_BACKUP_PASSWORD=wrong "$VAULT" restore --server "$URL" --account demo-phone --recovery-code "$CODE" --key-only
echo "(exit code $?: the server refused the password, and counted the attempt)"
set -e

printf '\n$ curl %s/metrics | grep -E "logins|objects_stored"\n' "$URL"
curl -sf "$URL/metrics" | grep -E "^backup_(logins|objects_stored)"
printf '\nWhat the server stored (the account appears only as a keyed hash):\n'
(cd "$WORK/server" && find backup-server-data -type f | sort)
printf '\n$ kill -TERM backup-server   # graceful stop\n'
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=
tail -n 1 "$WORK/server.out"
