#!/usr/bin/env bash
# Lays out the VaultMobile Swift package (mobile-bindings/swift/Package.swift) in
# target/ios/VaultMobile: the uniffi-generated Swift, the Secure Enclave wrapper, and
# vault_mobileFFI.xcframework (static libraries for iOS devices and the simulator, with the C
# header and module map). Building the XCFramework needs a Mac with Xcode and the Rust iOS targets.
#
#   scripts/package-ios.sh           on a Mac: release builds, XCFramework, the package
#   scripts/package-ios.sh --check   anywhere: the Swift generated from the host build, the package
#                                    laid out without the XCFramework, and Package.swift checked to
#                                    name every Swift source of its target (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
CHECK=false
case "${1:-}" in
    --check) CHECK=true ;;
    "") ;;
    *) echo "usage: scripts/package-ios.sh [--check]" >&2; exit 2 ;;
esac

IOS_TARGETS=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
OUT=target/ios/VaultMobile
SOURCES="$OUT/Sources/VaultMobile"

if ! $CHECK; then
    # Fail before building anything when the toolchain is missing.
    if [ "$(uname -s)" != Darwin ]; then
        echo "package-ios.sh builds an XCFramework: it needs macOS with Xcode (this is $(uname -s))." >&2
        echo "Here, scripts/package-ios.sh --check generates and checks the package's Swift sources." >&2
        exit 1
    fi
    command -v xcodebuild >/dev/null 2>&1 || { echo "xcodebuild not found: install Xcode and run xcode-select" >&2; exit 1; }
    installed="$(rustup target list --installed 2>/dev/null || true)"
    for target in "${IOS_TARGETS[@]}"; do
        grep -qx "$target" <<<"$installed" || { echo "missing Rust target $target: rustup target add ${IOS_TARGETS[*]}" >&2; exit 1; }
    done
fi

rm -rf "$OUT"
mkdir -p "$SOURCES"
cp mobile-bindings/swift/Package.swift "$OUT/"
cp mobile-bindings/swift/Sources/VaultMobile/*.swift "$SOURCES/"
GEN=target/ios/generated

if $CHECK; then
    LIB=target/debug/libvault_mobile.so
    [ -f "$LIB" ] || { echo "missing $LIB: cargo build -p mobile-bindings -p uniffi-bindgen" >&2; exit 1; }
    BINDGEN=target/debug/uniffi-bindgen
else
    for target in "${IOS_TARGETS[@]}"; do
        cargo build --locked --release -p mobile-bindings --target "$target"
    done
    cargo build --locked -p uniffi-bindgen
    LIB=target/aarch64-apple-ios/release/libvault_mobile.a
    BINDGEN=target/debug/uniffi-bindgen
fi
rm -rf "$GEN"
"$BINDGEN" generate --library "$LIB" --language swift --out-dir "$GEN" >/dev/null
for file in vault_mobile.swift vault_mobileFFI.h vault_mobileFFI.modulemap; do
    [ -s "$GEN/$file" ] || { echo "uniffi-bindgen did not generate $file" >&2; exit 1; }
done
cp "$GEN/vault_mobile.swift" "$SOURCES/"

# Package.swift must name exactly the Swift files of its target, and the FFI module the
# generated Swift imports.
named="$(sed -n '/sources: \[/,/\]/p' "$OUT/Package.swift" | grep -o '"[^"]*\.swift"' | tr -d '"' | sort)"
present="$(cd "$SOURCES" && ls -- *.swift | sort)"
if [ "$named" != "$present" ]; then
    echo "Package.swift names [$(echo $named)] but the target holds [$(echo $present)]" >&2
    exit 1
fi
module="$(grep -o '^module [A-Za-z_]*' "$GEN/vault_mobileFFI.modulemap" | cut -d' ' -f2)"
grep -q "import $module" "$SOURCES/vault_mobile.swift" || { echo "the generated Swift does not import $module" >&2; exit 1; }
grep -q "binaryTarget(name: \"$module\"" "$OUT/Package.swift" || { echo "Package.swift has no binary target $module" >&2; exit 1; }
grep -q 'SecureEnclaveWrapper: PlatformKeyWrapper' "$SOURCES/SecureEnclaveWrapper.swift"
grep -q 'public protocol PlatformKeyWrapper' "$SOURCES/vault_mobile.swift" || { echo "the generated Swift has no PlatformKeyWrapper protocol" >&2; exit 1; }

if $CHECK; then
    echo "Swift package checked in $OUT: $(echo $present) named by Package.swift; module $module (XCFramework not built: needs a Mac)"
    exit 0
fi

# The XCFramework: one static library per platform (the two simulator architectures merged),
# each with the header and the module map (Xcode reads it only as module.modulemap).
mkdir -p target/ios/include target/ios/ios-simulator
cp "$GEN/vault_mobileFFI.h" target/ios/include/
cp "$GEN/vault_mobileFFI.modulemap" target/ios/include/module.modulemap
lipo -create target/aarch64-apple-ios-sim/release/libvault_mobile.a target/x86_64-apple-ios/release/libvault_mobile.a \
    -output target/ios/ios-simulator/libvault_mobile.a
xcodebuild -create-xcframework \
    -library target/aarch64-apple-ios/release/libvault_mobile.a -headers target/ios/include \
    -library target/ios/ios-simulator/libvault_mobile.a -headers target/ios/include \
    -output "$OUT/vault_mobileFFI.xcframework"
echo "Swift package in $OUT: add it to Xcode (File > Add Package Dependencies > Add Local)"
