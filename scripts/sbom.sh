#!/usr/bin/env bash
# Software bills of materials (CycloneDX JSON) for the backup server and the client library:
# target/sbom/backup-server.cdx.json, target/sbom/vault-core.cdx.json (and one per other
# workspace package). Installs cargo-cyclonedx if missing. Run by hand or in a release job.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-cyclonedx >/dev/null 2>&1 || cargo install cargo-cyclonedx --locked
cargo cyclonedx --format json --spec-version 1.5 >/dev/null
mkdir -p target/sbom
for manifest in $(find . -path ./target -prune -o -path ./fuzz -prune -o -name '*.cdx.json' -print); do
    package=$(basename "$manifest" .cdx.json)
    mv "$manifest" "target/sbom/$package.cdx.json"
done
for sbom in target/sbom/*.cdx.json; do
    components=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1])).get("components", [])))' "$sbom")
    echo "$sbom: $components components"
done
