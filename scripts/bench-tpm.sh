#!/usr/bin/env bash
# Unlock through a TPM slot against a passphrase slot (default Argon2id), with a fresh software
# TPM (swtpm) on loopback: `cargo bench -p vault-tpm --features tpm --bench tpm_unlock`.
# swtpm measures the protocol and the TSS stack; a TPM chip adds its own (slower) command times.
# Usage: scripts/bench-tpm.sh [criterion arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/swtpm.sh
ensure_swtpm
work=$(mktemp -d)
trap 'stop_swtpm; rm -rf "$work"' EXIT
start_swtpm "$work/swtpm"
export TSS2_LOG=all+none
echo "machine: $(nproc) cores; swtpm $(swtpm --version 2>&1 | head -n 1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' || true) at $TPM2TOOLS_TCTI"
cargo bench -p vault-tpm --features tpm --locked --bench tpm_unlock -- "$@"
