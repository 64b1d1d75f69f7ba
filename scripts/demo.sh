#!/usr/bin/env bash
# The main job: builds the release binaries, walks through the vault CLI in a throw-away
# directory (create, add, bulk add, list, search, dashboard, key slots, media with a ranged read,
# disappearing messages and retention, root-key and device-key rotation, verify, a wrong
# passphrase), then runs the backup server on its embedded default (no arguments: 127.0.0.1:8371,
# a local data directory) and talks to it: health, an OPAQUE registration and login, a device
# token, an object round trip; then the vault's backup and recovery through it: setup with a
# recovery code, a backup, the phone "lost", a restore on a new device with the password and the
# recovery code; metrics, and a graceful stop.
# Every command is echoed with its quoting before it runs, so each `$ ` line can be copied into a
# shell in the same scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/system-deps.sh
. scripts/lib/release-build.sh
ensure_system_deps

# One cargo invocation, one feature set: the two binaries and the enrol_device example.
build_release_binaries
export PATH="$RELEASE_DIR:$RELEASE_DIR/examples:$PATH"
WORK="$(mktemp -d)"
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

# Each command is shown as it could be typed (words quoted where the shell needs it) and then
# run: every `$ ` line can be copied into a shell in the same directory.
quote_word() {
    if [[ $1 =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}
run() { # COMMAND WORDS...
    local word line=
    for word in "$@"; do line+="${line:+ }$(quote_word "$word")"; done
    printf '\n$ %s\n' "$line"
    "$@"
}
run_sh() { # SHELL-TEXT: pipes, redirections, variables; shown verbatim, then evaluated
    printf '\n$ %s\n' "$1"
    eval "$1"
}
step() { run vault "$@"; }

printf 'Working in %s (binaries from %s on PATH).\n' "$WORK" "$RELEASE_DIR"
run_sh "export VAULT_DIR=vault VAULT_PASSPHRASE='correct horse battery staple'"
step init --device-key device.key
step msg add --conversation family --sender alice --body "Dinner at eight? Bring the crème brûlée."
printf 'On my way\nRunning ten minutes late\nParking now\n' > lines.txt
run_sh 'vault msg add --conversation family --sender bob --stdin < lines.txt'
step msg list --conversation family
step search "creme brulee"
step --json search "late"
step --device-key device.key status
step key list
head -c 3000000 /dev/urandom > video.bin
run_sh 'MEDIA_ID="$(vault media add video.bin --conversation family --message 1)"; echo "$MEDIA_ID"'
step media list
step media get "$MEDIA_ID" seek.bin --offset 1000000 --length 65536
cmp <(tail -c +1000001 video.bin | head -c 65536) seek.bin && echo "(the 64 KiB range matches the original)"
step msg add --conversation family --sender bob --body "this one disappears in 60 s" --expires-in 60
step retention set --max-age-days 365
step --device-key device.key key rotate --root
step --device-key device.key key rotate
step verify
set +e
run_sh 'VAULT_PASSPHRASE=wrong vault status'
echo "(exit code $?: authentication failed)"
set -e
step status
printf '\nEvery file in the vault directory is encrypted or holds no secret:\n'
run ls -l "$VAULT_DIR"

printf '\n== The backup server on its embedded default ==\n'
mkdir server
printf '\n$ (cd server && backup-server) &   # no arguments: 127.0.0.1:8371, data in ./backup-server-data\n'
(cd server && exec backup-server) >server.out 2>server.log &
SERVER_PID=$!
for _ in $(seq 1 100); do
    grep -q "OPAQUE server key fingerprint" server.out 2>/dev/null && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "the backup server did not start (is port 8371 in use?):" >&2
        cat server.log >&2
        exit 1
    fi
    sleep 0.1
done
cat server.out
URL=http://127.0.0.1:8371
run curl -sf "$URL/healthz"
run_sh "curl -s $URL/v1/objects; echo   # no token"
run_sh "TOKEN=\"\$(echo 'demo password' | enrol_device $URL demo-user)\"   # OPAQUE registration and login, then a device token"
echo "device token: ${TOKEN:0:12}… (shown once; the server keeps only a keyed hash)"
head -c 100000 /dev/urandom > pack.bin
run_sh "curl -sf -o /dev/null -w 'HTTP %{http_code}\n' -X PUT -H \"Authorization: Bearer \$TOKEN\" --data-binary @pack.bin $URL/v1/objects/pack-0001"
run_sh "curl -s -X PUT -H \"Authorization: Bearer \$TOKEN\" --data-binary @pack.bin $URL/v1/objects/pack-0001; echo   # again: objects are write-once"
run_sh "curl -sf -H \"Authorization: Bearer \$TOKEN\" $URL/v1/objects; echo"
run_sh "curl -sf -H \"Authorization: Bearer \$TOKEN\" $URL/v1/objects/pack-0001 | cmp - pack.bin && echo '(the object reads back byte for byte)'"

printf '\n== Backup and recovery of the vault through that server ==\n'
run_sh "export VAULT_BACKUP_PASSWORD='a long backup password'"
run_sh "vault backup setup --server $URL --account demo-phone | tee setup.txt   # 2 of {server, recovery code}"
step backup run
step msg add --conversation family --sender alice --body "Added after the first backup"
step backup run
step backup list
step backup verify --read-data
run_sh 'rm -rf "$VAULT_DIR"   # the phone is lost'
run_sh "export VAULT_DIR=new-phone VAULT_PASSPHRASE=\"the new phone's passphrase\""
run_sh "export VAULT_RECOVERY_CODE=\"\$(sed -n '/^recovery code/{n;s/^ *//;p;}' setup.txt)\"   # the code written down at setup: environment or stdin, never the command line"
step restore --server "$URL" --account demo-phone
step msg list --conversation family
step media list
step status
set +e
run_sh "VAULT_BACKUP_PASSWORD=wrong vault restore --server $URL --account demo-phone --key-only"
echo "(exit code $?: the server refused the password, and counted the attempt)"
set -e

run_sh "curl -sf $URL/metrics | grep -E '^backup_(logins|objects_stored)'"
printf '\nWhat the server stored (the account appears only as a keyed hash):\n'
run_sh '(cd server && find backup-server-data -type f | sort)'
run_sh "kill -TERM $SERVER_PID   # graceful stop of backup-server"
wait "$SERVER_PID" || true
SERVER_PID=
tail -n 1 server.out
