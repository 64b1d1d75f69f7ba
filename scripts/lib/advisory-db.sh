# Sourced by the scripts: an offline RustSec advisory database for `cargo deny --offline check`.
#
#   prepare_advisory_db   copies the snapshot to target/advisory-dbs/advisory-db-3157b0e258782691,
#                         where deny.toml's `db-path = "target/advisory-dbs"` makes cargo-deny look
#                         for the default database, and commits it there as a one-commit git
#                         repository (cargo-deny reads its databases as git checkouts)
#   cargo_deny_check_offline
#                         prepare_advisory_db, then `cargo deny --offline check`: advisories,
#                         licenses, bans and sources; any finding fails (deny.toml says which
#                         advisories are ignored and why)
#
# The live database (https://github.com/RustSec/advisory-db) cannot be fetched from the CI
# machines, so a snapshot (CC0-1.0) sits next to the repository: ../shared/advisory-db, with its
# upstream commit and date in ../shared/advisory-db.SOURCE. ADVISORY_DB_SNAPSHOT overrides the
# snapshot's location. The shared copy is read-only and never written to.
#
# cargo-deny names a database's directory `<last URL segment>-<xxhash64 of the lower-cased URL>`;
# 3157b0e258782691 is that of its default URL (cargo-deny 0.20, src/advisories/helpers/db.rs).
# If that ever changes, cargo-deny fails with "failed to get HEAD timestamp" instead of silently
# checking nothing.
#
# cargo-deny judges staleness by the time the checkout was made, which here is always "now", so
# the snapshot's own date is printed, with a warning once it is older than 90 days (cargo-deny's
# default `maximum-db-staleness`): a new snapshot is then due.

ADVISORY_DB_DIR_NAME=advisory-db-3157b0e258782691

prepare_advisory_db() {
    local repo_root
    repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    local snapshot="${ADVISORY_DB_SNAPSHOT:-$repo_root/../shared/advisory-db}"
    local dest="$repo_root/target/advisory-dbs/$ADVISORY_DB_DIR_NAME"
    if [ ! -d "$snapshot/crates" ]; then
        echo "no RustSec advisory database snapshot at $snapshot (set ADVISORY_DB_SNAPSHOT)" >&2
        return 1
    fi
    snapshot="$(cd "$snapshot" && pwd)"
    local source_file="$snapshot.SOURCE" upstream_commit=unknown snapshot_date=
    if [ -f "$source_file" ]; then
        upstream_commit="$(grep -oE '[0-9a-f]{40}' "$source_file" | head -n 1 || true)"
        snapshot_date="$(grep -oE '[0-9]{4}-[0-9]{2}-[0-9]{2}' "$source_file" | head -n 1 || true)"
    fi

    # A fresh copy each time; the snapshot's files are read-only, the copy must not be.
    if [ -e "$dest" ]; then
        chmod -R u+w "$dest"
        rm -rf "$dest"
    fi
    mkdir -p "$(dirname "$dest")"
    cp -R "$snapshot" "$dest"
    chmod -R u+w "$dest"
    rm -rf "$dest/.git"

    local commit_date="${snapshot_date:+${snapshot_date}T00:00:00Z}"
    (
        cd "$dest"
        git init -q -b main .
        git config user.name "advisory-db snapshot"
        git config user.email "advisory-db-snapshot@localhost"
        git config commit.gpgsign false
        # The upstream it came from, so an online `cargo deny check` can fetch newer advisories.
        git remote add origin https://github.com/RustSec/advisory-db
        git add -A
        GIT_AUTHOR_DATE="${commit_date:-now}" GIT_COMMITTER_DATE="${commit_date:-now}" \
            git commit -q --no-verify -m "RustSec advisory-db snapshot, upstream commit $upstream_commit${snapshot_date:+ of $snapshot_date}"
    )

    if [ -n "$snapshot_date" ]; then
        local age_days=$(( ($(date -u +%s) - $(date -u -d "$snapshot_date" +%s)) / 86400 ))
        echo "RustSec advisory database: snapshot of $snapshot_date ($age_days days old), upstream commit $upstream_commit"
        if [ "$age_days" -gt 90 ]; then
            echo "warning: the advisory database snapshot is older than 90 days; advisories published since $snapshot_date are not checked" >&2
        fi
    else
        echo "RustSec advisory database: snapshot of unknown date (no $source_file)" >&2
    fi
}

cargo_deny_check_offline() {
    prepare_advisory_db
    # --offline covers cargo-deny's `cargo metadata` too, which needs every platform's crates:
    # download them first (from the crates.io registry, which is reachable).
    cargo fetch --locked --quiet
    cargo deny --offline check
}
