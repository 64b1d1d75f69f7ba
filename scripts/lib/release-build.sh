# Sourced by the scripts: the release binaries the demo and the benchmarks run.
#
#   build_release_binaries [CARGO_ARGS...]
#       builds `vault`, `backup-server` and backup-server's `enrol_device` example in ONE cargo
#       invocation, so with one feature set; sets RELEASE_DIR (the release directory of the
#       target directory, CARGO_TARGET_DIR included). The example sits in RELEASE_DIR/examples.
#
# Building the example in a separate `cargo build -p backup-server --example …` resolves the
# features of shared dependencies differently from the binaries' build and recompiles dozens of
# crates; every script that builds release binaries goes through here so they share one build.

build_release_binaries() {
    echo "building vault, backup-server and enrol_device in release mode (first run takes a few minutes)" >&2
    cargo build --release --locked -p vault-cli -p backup-server --bins --examples "$@"
    RELEASE_DIR="$(cargo metadata --format-version 1 --no-deps --locked |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release"
}
