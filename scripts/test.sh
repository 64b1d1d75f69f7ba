#!/usr/bin/env bash
# Installs what the tests need and runs every check CI runs: formatting, clippy, and the whole
# test suite (unit, integration, CLI, the independent SQLCipher reader, the backup server against
# a real S3 server, the TPM key wrapper against software TPMs, the Python bindings, and the Kotlin
# SDK on the JVM through Maven).
# Works on a fresh machine with the Rust toolchain and python3: nothing else is assumed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/system-deps.sh
. scripts/lib/seaweedfs.sh
. scripts/lib/swtpm.sh
ensure_system_deps
ensure_swtpm

log() { printf '\n==> %s\n' "$*"; }

log "Python test environment (.venv)"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
export VAULT_TEST_PYTHON="$PWD/.venv/bin/python"

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo deny: advisories (offline RustSec snapshot), licenses, bans, sources"
command -v cargo-deny >/dev/null 2>&1 || cargo install cargo-deny --locked
. scripts/lib/advisory-db.sh
cargo_deny_check_offline

log "S3 server for the S3 tests: SeaweedFS on loopback, telemetry off, fresh data"
trap 'stop_seaweedfs; stop_swtpm' EXIT
start_seaweedfs "$PWD/target/test-seaweedfs"
# BACKUP_TEST_S3_BUCKET, exported now, is seen by the build scripts of the crates with S3 tests
# (backup-server, tests/): `cargo test` compiles those tests to run (without it they are reported
# as ignored), and a test that runs fails if the server does not answer.

log "Software TPM for the TPM tests: swtpm on loopback, fresh state"
start_swtpm "$PWD/target/test-swtpm"

log "cargo test"
rm -f target/assurance-summary.txt
cargo test --workspace --locked
stop_seaweedfs

log "XChaCha20-Poly1305 on RustCrypto alone (the phones' backend): clippy, crypto and media tests"
cargo clippy -p vault-core --all-targets --no-default-features --locked -- -D warnings
cargo test -p vault-core --lib --no-default-features --locked -- crypto:: media::

log "TPM key wrapper (feature tpm): clippy, its tests and the CLI's against swtpm"
# The default build must not need the TSS libraries: no tss-esapi in its dependency graph.
if cargo tree --workspace --locked -e normal,build | grep -q tss-esapi; then
    echo "tss-esapi is in the default build" >&2
    exit 1
fi
cargo clippy -p vault-tpm -p vault-cli --all-targets --locked --features vault-tpm/tpm,vault-cli/tpm -- -D warnings
cargo test -p vault-tpm --features tpm --locked
cargo test -p vault-cli --features tpm --locked --test tpm
stop_swtpm

log "bindings: generate Python, Kotlin and Swift from the built library; run the Python tests"
cargo build --workspace --locked
scripts/gen-bindings.sh
PYTHONPATH=target/bindings/python .venv/bin/python -m pytest -q mobile-bindings/tests/python \
    | tee target/python-test-output.txt

log "Kotlin SDK: built by Maven (pinned pom, cached in ~/.m2), JUnit tests on the JVM"
scripts/test-kotlin.sh

log "Swift package: generated sources laid out and named by Package.swift (not compiled here)"
scripts/package-ios.sh --check

log "assurance suite summary (tests/tests/assurance_e2e.rs)"
cat target/assurance-summary.txt

log "bindings test summary"
echo "Python: $(tail -n 1 target/python-test-output.txt)"
cat target/kotlin-test-summary.txt
