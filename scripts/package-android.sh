#!/usr/bin/env bash
# Lays out an Android library module in target/android/vault-mobile: the Kotlin generated from
# the library, the SDK's hand-written Kotlin (mobile-bindings/kotlin: helpers, JvmKeyWrapper,
# AndroidKeystoreWrapper), src/main/jniLibs/<abi>/libvault_mobile.so built with cargo-ndk, and the
# Gradle files of mobile-bindings/kotlin/android-library. Needs the Android NDK
# (ANDROID_NDK_HOME), cargo-ndk and the Rust Android targets; checks them before building.
# Usage: scripts/package-android.sh [ABI...]   (default: arm64-v8a armeabi-v7a x86_64)
set -euo pipefail
cd "$(dirname "$0")/.."
ABIS=("$@")
[ ${#ABIS[@]} -gt 0 ] || ABIS=(arm64-v8a armeabi-v7a x86_64)

rust_target() {
    case "$1" in
        arm64-v8a) echo aarch64-linux-android ;;
        armeabi-v7a) echo armv7-linux-androideabi ;;
        x86_64) echo x86_64-linux-android ;;
        x86) echo i686-linux-android ;;
        *) echo "unknown ABI $1 (arm64-v8a, armeabi-v7a, x86_64, x86)" >&2; return 1 ;;
    esac
}

# Fail early, before any build, when a tool is missing.
ndk="${ANDROID_NDK_HOME:-${ANDROID_NDK_ROOT:-}}"
if [ -z "$ndk" ] || [ ! -d "$ndk/toolchains/llvm" ]; then
    echo "the Android NDK is needed: set ANDROID_NDK_HOME to an NDK (r26 or newer) directory" >&2
    echo "  (Android Studio: SDK Manager > SDK Tools > NDK; then e.g. \$ANDROID_HOME/ndk/<version>)" >&2
    exit 1
fi
cargo ndk --version >/dev/null 2>&1 || { echo "cargo-ndk is needed: cargo install cargo-ndk" >&2; exit 1; }
installed="$(rustup target list --installed 2>/dev/null || true)"
for abi in "${ABIS[@]}"; do
    target="$(rust_target "$abi")"
    grep -qx "$target" <<<"$installed" || { echo "missing Rust target $target: rustup target add $target" >&2; exit 1; }
done

OUT=target/android/vault-mobile
rm -rf "$OUT"
mkdir -p "$OUT/src/main/kotlin" "$OUT/src/main/jniLibs"
ndk_args=()
for abi in "${ABIS[@]}"; do ndk_args+=(-t "$abi"); done
cargo ndk "${ndk_args[@]}" -o "$OUT/src/main/jniLibs" build --locked --release -p mobile-bindings
cargo build --locked -p uniffi-bindgen
target/debug/uniffi-bindgen generate --library "$OUT/src/main/jniLibs/${ABIS[0]}/libvault_mobile.so" \
    --language kotlin --out-dir "$OUT/src/main/kotlin" >/dev/null
cp -r mobile-bindings/kotlin/vault-sdk/src/main/kotlin/. mobile-bindings/kotlin/vault-sdk-android/src/main/kotlin/. \
    "$OUT/src/main/kotlin/"
cp mobile-bindings/kotlin/android-library/build.gradle.kts mobile-bindings/kotlin/android-library/consumer-rules.pro "$OUT/"
cp mobile-bindings/kotlin/android-library/AndroidManifest.xml "$OUT/src/main/"
echo "Android library in $OUT:"
find "$OUT" -type f | sort
