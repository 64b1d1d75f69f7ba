#!/usr/bin/env bash
# Measures the Kotlin SDK against the release library, by hand (not in CI): the per-call cost of
# small vault calls (`secret`, a 32-byte get; `search`, 10 hits of 2,000 messages) from Kotlin
# on the JVM through JNA against the same exported methods called from Rust
# (mobile-bindings/examples/call_baseline.rs), and media import through the chunked API from a
# Kotlin InputStream against import by path. Prints a Markdown table for docs/benchmarks.md.
# Usage: scripts/bench-kotlin.sh [MIB]   (media size, default 256)
set -euo pipefail
cd "$(dirname "$0")/.."
MIB="${1:-256}"
command -v mvn >/dev/null 2>&1 || { echo "Maven is needed (scripts/test-kotlin.sh installs it)" >&2; exit 1; }
cargo build --locked --release -p mobile-bindings -p uniffi-bindgen >&2
cargo build --locked --release -p mobile-bindings --example call_baseline >&2
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-kotlin.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

target/release/examples/call_baseline "$WORK/rust" > "$WORK/results.txt"
(cd mobile-bindings/kotlin && mvn -B -q --no-transfer-progress -Dstyle.color=never install -DskipTests -Dvault.profile.dir="$PWD/../../target/release" >&2 \
    && mvn -B -q --no-transfer-progress -Dstyle.color=never -pl vault-sdk test-compile exec:exec@bench \
        -Dvault.profile.dir="$PWD/../../target/release" -Dbench.dir="$WORK/kotlin" -Dbench.mib="$MIB") \
    | grep -o 'kotlin [a-z_0-9]* [0-9.]*' >> "$WORK/results.txt"

python3 - "$WORK/results.txt" "$MIB" <<'PY'
import sys
values = {}
for line in open(sys.argv[1]):
    side, name, value = line.split()
    values[(side, name)] = float(value)
print(f"| call | Rust µs/call | Kotlin (JNA) µs/call | FFI overhead µs/call |")
print("|---|---:|---:|---:|")
for name in ("secret", "search"):
    rust, kotlin = values[("rust", name)], values[("kotlin", name)]
    print(f"| `{name}` | {rust:.2f} | {kotlin:.2f} | {kotlin - rust:.2f} |")
print()
path = values[("kotlin", "import_path_mib_s")]
print(f"| media import, {sys.argv[2]} MiB | MiB/s | × by path |")
print("|---|---:|---:|")
print(f"| by path (`importMediaFile`) | {path:.1f} | 1.00 |")
for key, v in sorted(values.items()):
    if key[1].startswith("import_chunked_"):
        chunk = key[1].split("_")[2]
        print(f"| chunked from a Kotlin `InputStream` (`importMedia`, {chunk} chunks) | {v:.1f} | {v / path:.2f} |")
PY
