#!/usr/bin/env bash
# Installs what the tests need and runs every check CI runs: formatting, clippy, and the whole
# test suite (unit, integration, CLI, and the independent SQLCipher reader).
# Works on a fresh machine with the Rust toolchain and python3: nothing else is assumed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/system-deps.sh
ensure_system_deps

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

log "cargo deny: licenses, bans, sources (advisories need the RustSec database, unreachable here)"
command -v cargo-deny >/dev/null 2>&1 || cargo install cargo-deny --locked
cargo deny check licenses bans sources

log "cargo test"
cargo test --workspace --locked

log "bindings: generate Python, Kotlin and Swift from the built library; run the Python tests"
cargo build --workspace --locked
scripts/gen-bindings.sh
PYTHONPATH=target/bindings/python .venv/bin/python -m pytest -q mobile-bindings/tests/python
