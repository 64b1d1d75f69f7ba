#!/usr/bin/env bash
# Generates the Python, Kotlin and Swift bindings from the built `mobile-bindings` library (uniffi
# library mode, with the workspace's pinned uniffi-bindgen) into target/bindings/<language>/, and
# puts the shared library next to the Python module. Kotlin and Swift are not compiled here; the
# script checks they were generated and are not empty. Usage: scripts/gen-bindings.sh [PROFILE_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE_DIR="${1:-target/debug}"
LIB="$PROFILE_DIR/libvault_mobile.so"
[ -f "$LIB" ] || { echo "missing $LIB: build with cargo build -p mobile-bindings -p uniffi-bindgen" >&2; exit 1; }
OUT=target/bindings
rm -rf "$OUT"
for language in python kotlin swift; do
    "$PROFILE_DIR/uniffi-bindgen" generate --library "$LIB" --language "$language" --out-dir "$OUT/$language" >/dev/null
    if [ -z "$(find "$OUT/$language" -type f -size +1k)" ]; then
        echo "no $language bindings were generated" >&2
        exit 1
    fi
    echo "generated $language: $(find "$OUT/$language" -type f | sort | tr '\n' ' ')"
done
cp "$LIB" "$OUT/python/"
