#!/usr/bin/env bash
# Builds the Kotlin SDK (mobile-bindings/kotlin) against the built library and runs its JUnit 5
# tests on the JVM: the real libvault_mobile.so through JNA, real backup-server processes on
# loopback. Maven fetches the pinned plugins and libraries from Maven Central into ~/.m2 once;
# later runs use that cache. Writes the test counts to target/kotlin-test-summary.txt.
# Usage: scripts/test-kotlin.sh [PROFILE_DIR]   (default target/debug; builds what is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/system-deps.sh
PROFILE_DIR="$(cd "${1:-target/debug}" 2>/dev/null && pwd || echo "$PWD/${1:-target/debug}")"

ensure_jdk_and_maven() {
    local missing=()
    command -v javac >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
    apt_install "system packages" "a JDK 17 or newer and Maven 3.8 or newer" "${missing[@]}"
}
ensure_jdk_and_maven

if [ "$PROFILE_DIR" = "$PWD/target/debug" ]; then
    # Cheap when the workspace build already made them.
    cargo build --locked -p mobile-bindings -p uniffi-bindgen
    cargo build --locked -p backup-server --bin backup-server
fi
for file in libvault_mobile.so uniffi-bindgen backup-server; do
    [ -e "$PROFILE_DIR/$file" ] || { echo "missing $PROFILE_DIR/$file: build it first" >&2; exit 1; }
done

rm -rf mobile-bindings/kotlin/vault-sdk/target/surefire-reports
status=0
(cd mobile-bindings/kotlin && mvn -B --no-transfer-progress -Dvault.profile.dir="$PROFILE_DIR" \
    -Dvault.requireServer=true install) || status=$?

# Counts from Surefire's reports (every test class of vault-sdk).
python3 - <<'PY' || status=1
import glob, xml.etree.ElementTree as ET
tests = failed = skipped = 0
for report in glob.glob("mobile-bindings/kotlin/vault-sdk/target/surefire-reports/TEST-*.xml"):
    suite = ET.parse(report).getroot()
    tests += int(suite.get("tests", 0))
    failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped += int(suite.get("skipped", 0))
line = f"Kotlin: {tests - failed - skipped} passed, {failed} failed, {skipped} skipped"
print(line)
open("target/kotlin-test-summary.txt", "w").write(line + "\n")
raise SystemExit(1 if tests == 0 else 0)
PY
exit "$status"
