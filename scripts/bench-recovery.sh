#!/usr/bin/env bash
# Client-side time of recovery enrolment (`vault backup setup` with two local servers and a
# recovery code) and of recovering the backup key (`vault restore --key-only`: OPAQUE logins at
# both servers in parallel, share decryption, combination and the key check), at the default
# Argon2 parameters (64 MiB, 3 passes, 1 lane), over ROUNDS rounds (default 5).
# Usage: scripts/bench-recovery.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
. scripts/lib/release-build.sh
build_release_binaries >/dev/null
BIN=$RELEASE_DIR
work=$(mktemp -d)
. scripts/lib/backup-servers.sh
trap 'stop_backup_servers; rm -rf "$work"' EXIT

# Not a=$(start_backup_server …): the server's PID must be recorded in this shell.
start_backup_server "$BIN/backup-server" "$work/a"
a=$SERVER_URL
start_backup_server "$BIN/backup-server" "$work/b"
b=$SERVER_URL
export VAULT_PASSPHRASE="bench passphrase" VAULT_BACKUP_PASSWORD="bench backup password"
ms() { python3 -c 'import sys,time; print(int(time.time()*1000))'; }

echo "machine: $(nproc) cores; servers on loopback; default Argon2 (64 MiB, t=3, p=1)"
setup_total=0; recover_total=0; recover_reported=0
for i in $(seq 1 "$rounds"); do
    export VAULT_DIR="$work/vault-$i"
    "$BIN/vault" init >/dev/null
    start=$(ms)
    "$BIN/vault" backup setup --server "$a" --server "$b" --account "bench-$i" >/dev/null
    setup_ms=$(( $(ms) - start ))
    start=$(ms)
    reported=$("$BIN/vault" --json restore --key-only --server "$a" --server "$b" --account "bench-$i" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["duration_ms"])')
    recover_ms=$(( $(ms) - start ))
    printf 'round %d: setup %5d ms   key recovery %5d ms (process), %5d ms (logins to checked key)\n' \
        "$i" "$setup_ms" "$recover_ms" "$reported"
    setup_total=$((setup_total + setup_ms)); recover_total=$((recover_total + recover_ms))
    recover_reported=$((recover_reported + reported))
done
printf 'mean: setup %d ms; key recovery %d ms per process, %d ms logins to checked key\n' \
    $((setup_total / rounds)) $((recover_total / rounds)) $((recover_reported / rounds))
