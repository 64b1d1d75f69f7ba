#!/usr/bin/env bash
# Media encryption against a peer, side by side on the same file: `vault media add/get` (release
# build) and `age` (Debian's age 1.1.1, X25519 recipient, so no scrypt cost), both durable: the
# vault fsyncs its file, renames it and commits a database row; age's output is fsynced by
# `sync FILE` inside the timed command. Peak memory with GNU time.
#
# Pairwise, so that a machine whose speed drifts (other builds on it) moves both halves of a pair
# alike: one warm-up run of each, then PAIRS pairs run A B A B …; each figure is the median of the
# per-pair ratios age/vault (above 1: the vault is faster), with their min and max.
#
# A floor is timed the same way against age: a plain durable copy of the input (`cp` + `sync`, no
# cipher). An encryptor writes as many bytes durably as the copy does, so the copy's ratio to age
# bounds the ratio any durable encryptor can reach on this disk.
#
# Usage: scripts/bench-media-peers.sh [MiB] [DIR] [PAIRS]
#   MiB    file size (default 1024)
#   DIR    where the vault, the input and every output live (default /dev/shm: no disk; give a
#          directory on a disk to include the disk)
#   PAIRS  timed pairs per figure (default 5)
# Environment: VAULT_BIN=PATH times that vault binary instead of building one, for instance the
#   RustCrypto-only build `cargo build --release -p vault-cli --no-default-features`.
#
# Temperatures: "warm" leaves the input in the page cache (as after it was written); "cold" evicts
# the file being read (the input, or the encrypted file for a decryption) from the page cache
# before every timed run with posix_fadvise(DONTNEED) on that file alone, so the rest of the
# machine keeps its cache. A tmpfs DIR (/dev/shm) holds its files in memory: warm only there.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
MIB="${1:-1024}"
BASE="${2:-/dev/shm}"
PAIRS="${3:-5}"
for tool in age age-keygen python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install age python3 time)" >&2; exit 1; }
done
if [ -n "${VAULT_BIN:-}" ]; then
    VAULT="$VAULT_BIN"
else
    . scripts/lib/release-build.sh
    build_release_binaries >/dev/null
    VAULT="$RELEASE_DIR/vault"
fi
WORK="$(mktemp -d "$BASE/media-peers.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export VAULT_DIR="$WORK/vault" VAULT_PASSPHRASE="bench passphrase"
DK=(--device-key "$WORK/device.key")
"$VAULT" "${DK[@]}" init >/dev/null
head -c "$((MIB << 20))" /dev/urandom > "$WORK/input.bin"
sync "$WORK/input.bin"
age-keygen -o "$WORK/age.key" 2>/dev/null
RECIPIENT="$(age-keygen -y "$WORK/age.key")"
if [ "$(stat -f -c %T "$WORK")" = tmpfs ]; then TEMPERATURES=(warm); else TEMPERATURES=(warm cold); fi

evict() { # FILE...: drop these files' clean pages from the page cache
    python3 -c 'import os, sys
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)' "$@"
}

# The commands timed, and what each needs before (untimed) and leaves behind (removed, untimed).
vault_add() { "$VAULT" "${DK[@]}" media add "$WORK/input.bin" > "$WORK/added.id"; }
vault_add_after() { "$VAULT" "${DK[@]}" media rm "$(cat "$WORK/added.id")" >/dev/null; }
age_encrypt() { age -r "$RECIPIENT" -o "$WORK/out.age" "$WORK/input.bin" && sync "$WORK/out.age"; }
age_encrypt_after() { rm -f "$WORK/out.age"; }
vault_get() { "$VAULT" "${DK[@]}" media get "$ID" "$WORK/plain.vault"; }
vault_get_after() { rm -f "$WORK/plain.vault"; }
age_decrypt() { age -d -i "$WORK/age.key" -o "$WORK/plain.age" "$WORK/kept.age" && sync "$WORK/plain.age"; }
age_decrypt_after() { rm -f "$WORK/plain.age"; }
plain_copy() { cp "$WORK/input.bin" "$WORK/copy.bin" && sync "$WORK/copy.bin"; }
plain_copy_after() { rm -f "$WORK/copy.bin"; }

# run COMMAND TEMPERATURE FILE_READ: prints the wall-clock seconds of COMMAND.
run() {
    local command="$1" temperature="$2" read_file="$3" start end
    [ "$temperature" = cold ] && evict "$read_file"
    start="$EPOCHREALTIME"
    "$command" >/dev/null
    end="$EPOCHREALTIME"
    "${command}_after"
    python3 -c "print(f'{$end - $start:.3f}')"
}

# pairwise LABEL VAULT_COMMAND AGE_COMMAND TEMPERATURE VAULT_READS AGE_READS
pairwise() {
    local label="$1" a="$2" b="$3" temperature="$4" a_reads="$5" b_reads="$6" times=()
    run "$a" "$temperature" "$a_reads" >/dev/null
    run "$b" "$temperature" "$b_reads" >/dev/null
    for _ in $(seq "$PAIRS"); do
        times+=("$(run "$a" "$temperature" "$a_reads")" "$(run "$b" "$temperature" "$b_reads")")
    done
    python3 - "$label" "${times[@]}" <<'EOF'
import statistics, sys
label, t = sys.argv[1], [float(x) for x in sys.argv[2:]]
vault, age = t[0::2], t[1::2]
ratios = sorted(b / a for a, b in zip(vault, age))
print(f"| {label} | {statistics.median(vault):.3f} | {statistics.median(age):.3f} | "
      f"{statistics.median(ratios):.2f}× ({ratios[0]:.2f}–{ratios[-1]:.2f}) | {len(ratios)} |")
print("  pairs (vault s, age s): " + ", ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(vault, age)))
EOF
}

echo "== ${MIB} MiB in $BASE ($(stat -f -c %T "$WORK")), $PAIRS pairs after one warm-up each; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| operation | vault (or floor) median s | age median s | age/vault (or age/floor): median (min–max) | pairs |"
echo "|---|---|---|---|---|"
ID="$("$VAULT" "${DK[@]}" media add "$WORK/input.bin")"
age -r "$RECIPIENT" -o "$WORK/kept.age" "$WORK/input.bin"
sync "$WORK/kept.age" "$VAULT_DIR/media/$ID"
for temperature in "${TEMPERATURES[@]}"; do
    pairwise "encrypt ($temperature): media add / age -e + fsync" vault_add age_encrypt "$temperature" \
        "$WORK/input.bin" "$WORK/input.bin"
done
for temperature in "${TEMPERATURES[@]}"; do
    pairwise "floor, encrypt ($temperature): cp + fsync (no cipher) / age -e + fsync" plain_copy age_encrypt \
        "$temperature" "$WORK/input.bin" "$WORK/input.bin"
done
for temperature in "${TEMPERATURES[@]}"; do
    pairwise "decrypt ($temperature): media get / age -d + fsync" vault_get age_decrypt "$temperature" \
        "$VAULT_DIR/media/$ID" "$WORK/kept.age"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== peak memory (max RSS, KiB)"
rss() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1; }
BASELINE="$(rss "$VAULT" "${DK[@]}" status)"
IMPORT="$(rss "$VAULT" "${DK[@]}" media add "$WORK/input.bin")"
EXPORT="$(rss "$VAULT" "${DK[@]}" media get "$ID" "$WORK/plain.vault")"
echo "vault status (baseline):  $BASELINE"
echo "vault media add ${MIB} MiB: $IMPORT (+$((IMPORT - BASELINE)) KiB)"
echo "vault media get ${MIB} MiB: $EXPORT (+$((EXPORT - BASELINE)) KiB)"
cmp -s "$WORK/input.bin" "$WORK/plain.vault" && echo "round trip: identical"
