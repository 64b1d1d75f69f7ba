//! The `vault` binary driven as a user would: commands, JSON output, exit codes, and error
//! lines that carry no secret or message content.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Output;

use test_support::cli::{VaultCommand, json, ok};

const PASS: &str = "PASS-cli-test-5512";
const FAST: [&str; 6] = ["--kdf-memory-mib", "8", "--kdf-iterations", "1", "--kdf-parallelism", "1"];

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    root: PathBuf,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    Env { dir: root.join("vault"), root, _tmp: tmp }
}

fn vault(env: &Env, passphrase: Option<&str>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = VaultCommand::new(env!("CARGO_BIN_EXE_vault")).arg("--vault").arg(&env.dir).args(args);
    if let Some(p) = passphrase {
        command = command.passphrase(p);
    }
    command.stdin(stdin.unwrap_or_default()).output()
}

/// `vault` with extra environment (for example `TZ`).
fn vault_with(env: &Env, envs: &[(&str, &str)], args: &[&str]) -> Output {
    VaultCommand::new(env!("CARGO_BIN_EXE_vault"))
        .arg("--vault")
        .arg(&env.dir)
        .args(args)
        .passphrase(PASS)
        .envs(envs)
        .stdin("")
        .output()
}

/// Asserts `line` holds an ISO 8601 local time `YYYY-MM-DD HH:MM:SS +HH:MM` with `offset`.
fn has_local_time(line: &str, offset: &str) -> bool {
    line.split("  ").chain(line.split(['[', ']'])).any(|part| {
        let part = part.trim().trim_start_matches("created ").trim_start_matches("enrolled ");
        let b = part.as_bytes();
        part.len() == 26
            && part.ends_with(offset)
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b' '
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b' '
    })
}

fn init(env: &Env) {
    let mut args = vec!["init"];
    args.extend(FAST);
    ok(vault(env, Some(PASS), &args, None));
}

/// Asserts the exit code and that stderr is one line free of the given secrets.
fn fails_with(out: &Output, code: i32, secrets: &[&str]) -> String {
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    for secret in secrets {
        assert!(!stderr.contains(secret), "stderr leaks {secret:?}: {stderr}");
    }
    stderr
}

#[test]
fn walkthrough_with_json_output() {
    let env = env();
    init(&env);
    let id = json(vault(
        &env,
        Some(PASS),
        &["--json", "msg", "add", "--conversation", "family", "--sender", "alice", "--body", "dinner at eight"],
        None,
    ));
    assert!(id["id"].as_i64().unwrap() > 0);
    let bulk = json(vault(
        &env,
        Some(PASS),
        &["--json", "msg", "add", "--conversation", "family", "--sender", "bob", "--stdin"],
        Some("on my way\nrunning late\n"),
    ));
    assert_eq!(bulk["added"], 2);

    let list =
        json(vault(&env, Some(PASS), &["--json", "msg", "list", "--conversation", "family", "--limit", "2"], None));
    let bodies: Vec<_> =
        list["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect();
    assert_eq!(bodies, ["on my way", "running late"]);

    let hits = json(vault(&env, Some(PASS), &["--json", "search", "dinner"], None));
    assert_eq!(hits["hits"][0]["message"]["sender"], "alice");

    let status = json(vault(&env, Some(PASS), &["--json", "status"], None));
    assert_eq!(status["counts"]["messages"], 3);
    assert_eq!(status["encryption"]["database"], "sqlcipher");
    assert!(!status["encryption"]["cipher_version"].as_str().unwrap().is_empty());
    assert_eq!(status["slots"][0]["kind"], "passphrase");
    assert_eq!(status["slots"][0]["kdf"]["memory_kib"], 8192);
    assert_eq!(status["hardware_backed_slots"], 0);

    let human = ok(vault(&env, Some(PASS), &["status"], None));
    assert!(human.contains("SQLCipher") && human.contains("unlock_succeeded"), "{human}");

    let report = json(vault(&env, Some(PASS), &["--json", "verify"], None));
    assert_eq!(report["ok"], true);
    assert_eq!(report["checks"][2]["name"], "search index");
}

#[test]
fn verify_lists_the_search_index_check() {
    let env = env();
    init(&env);
    ok(vault(
        &env,
        Some(PASS),
        &["msg", "add", "--conversation", "c", "--sender", "a", "--body", "indexed words"],
        None,
    ));
    let text = ok(vault(&env, Some(PASS), &["verify"], None));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["ok       key slots", "ok       database", "ok       search index", "ok       media"]);
}

#[test]
fn passphrases_from_stdin_and_slot_management() {
    let env = env();
    init(&env);
    let add = vault(
        &env,
        None,
        &[
            "--passphrase-stdin",
            "key",
            "add-passphrase",
            "--kdf-memory-mib",
            "8",
            "--kdf-iterations",
            "1",
            "--kdf-parallelism",
            "1",
        ],
        Some(&format!("{PASS}\nsecond-pass\n")),
    );
    assert_eq!(ok(&add).trim(), "added slot 1");
    let list = json(vault(&env, None, &["--json", "key", "list"], None));
    assert_eq!(list["slots"].as_array().unwrap().len(), 2);

    // Change slot 1's passphrase, unlocking with it.
    let mut change = vec!["key", "change-passphrase"];
    change.extend(FAST);
    let changed = vault(&env, Some("second-pass"), &change, None);
    assert_eq!(changed.status.code(), Some(2), "no new passphrase given is a usage error");
    let mut cmd_args = vec!["--passphrase-stdin"];
    cmd_args.extend(&change);
    ok(vault(&env, None, &cmd_args, Some("second-pass\nthird-pass\n")));
    fails_with(&vault(&env, Some("second-pass"), &["status"], None), 3, &["second-pass"]);
    ok(vault(&env, Some("third-pass"), &["status"], None));

    ok(vault(&env, Some("third-pass"), &["key", "remove-slot", "0"], None));
    fails_with(&vault(&env, Some(PASS), &["status"], None), 3, &[PASS]);
    let last = vault(&env, Some("third-pass"), &["key", "remove-slot", "1"], None);
    fails_with(&last, 2, &["third-pass"]);
}

#[test]
fn device_key_slot_unlocks_without_the_passphrase() {
    let env = env();
    let key = env.root.join("device.key");
    let key_arg = key.to_str().unwrap();
    let mut args = vec!["--device-key", key_arg, "init"];
    args.extend(FAST);
    ok(vault(&env, Some(PASS), &args, None));
    ok(vault(
        &env,
        None,
        &["--device-key", key_arg, "msg", "add", "--conversation", "c", "--sender", "s", "--body", "hi"],
        None,
    ));
    let status = json(vault(&env, None, &["--device-key", key_arg, "--json", "status"], None));
    assert_eq!(status["slots"][1]["protection"], "software, not hardware-backed");
    assert_eq!(status["unlocked_by"], 1);
    let other = env.root.join("other.key");
    let make_other = vault(&env, Some(PASS), &["key", "add-device-key", other.to_str().unwrap()], None);
    assert_eq!(ok(&make_other).trim(), "added slot 2");
    // The second device key unlocks too.
    let with_other = json(vault(&env, None, &["--device-key", other.to_str().unwrap(), "--json", "status"], None));
    assert_eq!(with_other["unlocked_by"], 2);
    let wrong_file = env.root.join("wrong.key");
    ok(vault(
        &Env { _tmp: tempfile::tempdir().unwrap(), dir: env.root.join("elsewhere"), root: env.root.clone() },
        Some(PASS),
        &[
            "--device-key",
            wrong_file.to_str().unwrap(),
            "init",
            "--kdf-memory-mib",
            "8",
            "--kdf-iterations",
            "1",
            "--kdf-parallelism",
            "1",
        ],
        None,
    ));
    fails_with(&vault(&env, None, &["--device-key", wrong_file.to_str().unwrap(), "status"], None), 3, &[]);
}

#[test]
fn exit_codes_and_error_lines() {
    let env = env();
    // No passphrase source at all: usage.
    let mut args = vec!["init"];
    args.extend(FAST);
    fails_with(&vault(&env, None, &args, None), 2, &[]);
    init(&env);
    // Bad arguments: clap's usage code.
    assert_eq!(vault(&env, Some(PASS), &["msg", "add", "--conversation", "c"], None).status.code(), Some(2));
    // Wrong passphrase.
    fails_with(&vault(&env, Some("not-it-9931"), &["msg", "list", "--conversation", "c"], None), 3, &["not-it-9931"]);
    // Re-init over an existing vault.
    fails_with(&vault(&env, Some(PASS), &args, None), 1, &[PASS]);
    // Invalid input.
    fails_with(&vault(&env, Some(PASS), &["search", "   "], None), 2, &[PASS]);
    // Messages with content never leak into errors.
    let body = "SECRET-BODY-4411";
    ok(vault(&env, Some(PASS), &["msg", "add", "--conversation", "c", "--sender", "s", "--body", body], None));
    fails_with(
        &vault(&env, Some(PASS), &["msg", "list", "--conversation", "c", "--limit", "0"], None),
        2,
        &[PASS, body],
    );
    // No vault here.
    let missing = Env { _tmp: tempfile::tempdir().unwrap(), dir: env.root.join("missing"), root: env.root.clone() };
    fails_with(&vault(&missing, Some(PASS), &["status"], None), 1, &[PASS]);
}

#[test]
fn damaged_database_exits_with_integrity_code() {
    let env = env();
    init(&env);
    let batch: String = (0..500).map(|i| format!("message {i} {}\n", "x".repeat(i % 90))).collect();
    ok(vault(&env, Some(PASS), &["msg", "add", "--conversation", "c", "--sender", "s", "--stdin"], Some(&batch)));
    let db = env.dir.join("vault.db");
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 8 * 4096);
    // Damage a page in the middle (a message page), not page 1.
    bytes[5 * 4096 + 300] ^= 0x01;
    std::fs::write(&db, &bytes).unwrap();
    let verify = vault(&env, Some(PASS), &["verify"], None);
    let stderr = fails_with(&verify, 4, &[PASS, "message 1"]);
    assert!(stderr.contains("integrity") || stderr.contains("verification"), "{stderr}");
    // Damage page 1: the database cannot even be opened.
    bytes[100] ^= 0x01;
    std::fs::write(&db, &bytes).unwrap();
    fails_with(&vault(&env, Some(PASS), &["status"], None), 4, &[PASS]);
    assert!(Path::new(&db).exists());
}

#[test]
fn media_commands_round_trip_and_range_export() {
    let env = env();
    init(&env);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let src = env.root.join("photo.bin");
    std::fs::write(&src, &data).unwrap();
    let msg = json(vault(
        &env,
        Some(PASS),
        &["--json", "msg", "add", "--conversation", "c", "--sender", "s", "--body", "see photo"],
        None,
    ));
    let msg_id = msg["id"].to_string();
    let added = json(vault(
        &env,
        Some(PASS),
        &["--json", "media", "add", src.to_str().unwrap(), "--conversation", "c", "--message", &msg_id],
        None,
    ));
    let id = added["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    let out = env.root.join("out.bin");
    ok(vault(&env, Some(PASS), &["media", "get", &id, out.to_str().unwrap()], None));
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let part = env.root.join("part.bin");
    ok(vault(
        &env,
        Some(PASS),
        &["media", "get", &id, part.to_str().unwrap(), "--offset", "65530", "--length", "20"],
        None,
    ));
    assert_eq!(std::fs::read(&part).unwrap(), &data[65530..65550]);
    let list = json(vault(&env, Some(PASS), &["--json", "media", "list"], None));
    assert_eq!(list["media"][0]["length"], 300_000);
    assert_eq!(list["media"][0]["messages"][0].to_string(), msg_id);
    fails_with(&vault(&env, Some(PASS), &["media", "get", "zz", "x"], None), 2, &[PASS]);
    // A unique prefix of at least 4 hex digits names the item; too short or unknown ones fail.
    let by_prefix = env.root.join("by-prefix.bin");
    ok(vault(&env, Some(PASS), &["media", "get", &id[..6].to_uppercase(), by_prefix.to_str().unwrap()], None));
    assert_eq!(std::fs::read(&by_prefix).unwrap(), std::fs::read(&out).unwrap());
    let short = fails_with(&vault(&env, Some(PASS), &["media", "get", &id[..3], "x"], None), 2, &[PASS]);
    assert!(short.contains("at least 4"), "{short}");
    let other = if id.starts_with("0000") { "ffff" } else { "0000" };
    let unknown = fails_with(&vault(&env, Some(PASS), &["media", "get", other, "x"], None), 1, &[PASS]);
    assert!(unknown.contains(&format!("media with an id starting {other}")), "{unknown}");
    // Tamper with the file: get fails with the integrity code and writes nothing.
    let file = env.dir.join("media").join(&id);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100_000] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let again = env.root.join("again.bin");
    fails_with(&vault(&env, Some(PASS), &["media", "get", &id, again.to_str().unwrap()], None), 4, &[PASS]);
    assert!(!again.exists());
    fails_with(&vault(&env, Some(PASS), &["verify"], None), 4, &[PASS]);
    ok(vault(&env, Some(PASS), &["media", "rm", &id], None));
    assert!(!file.exists());
    ok(vault(&env, Some(PASS), &["verify"], None));
}

#[test]
fn retention_commands_purge() {
    let env = env();
    init(&env);
    ok(vault(&env, Some(PASS), &["msg", "add", "--conversation", "c", "--sender", "s", "--body", "stays"], None));
    ok(vault(
        &env,
        Some(PASS),
        &["msg", "add", "--conversation", "c", "--sender", "s", "--body", "goes", "--expires-in", "1"],
        None,
    ));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let report = json(vault(&env, Some(PASS), &["--json", "retention", "purge"], None));
    assert_eq!(report["purged"]["messages"], 1, "{report}");
    let set = json(vault(
        &env,
        Some(PASS),
        &["--json", "retention", "set", "--max-messages", "5", "--max-age-days", "30"],
        None,
    ));
    assert_eq!(set["policy"]["max_messages"], 5);
    assert_eq!(set["policy"]["max_age_secs"], 30 * 86_400);
    ok(vault(&env, Some(PASS), &["retention", "expiry", "c", "3600"], None));
    let list = json(vault(&env, Some(PASS), &["--json", "msg", "list", "--conversation", "c"], None));
    assert_eq!(list["messages"].as_array().unwrap().len(), 1);
}

#[test]
fn key_rotation_commands() {
    let env = env();
    let key = env.root.join("device.key");
    let key_arg = key.to_str().unwrap();
    let mut args = vec!["--device-key", key_arg, "init"];
    args.extend(FAST);
    ok(vault(&env, Some(PASS), &args, None));
    ok(vault(&env, Some(PASS), &["msg", "add", "--conversation", "c", "--sender", "s", "--body", "kept"], None));
    // Without the device key, a root rotation cannot re-seal slot 1 and changes nothing.
    let refused = vault(&env, Some(PASS), &["key", "rotate", "--root"], None);
    assert!(fails_with(&refused, 2, &[PASS]).contains("slot(s) 1"));
    let root = json(vault(&env, Some(PASS), &["--device-key", key_arg, "--json", "key", "rotate", "--root"], None));
    assert_eq!(root["slots_resealed"], 2);
    let old_key = std::fs::read(&key).unwrap();
    let device = json(vault(&env, None, &["--device-key", key_arg, "--json", "key", "rotate"], None));
    assert_eq!(device["slots"][0], 1);
    assert_ne!(std::fs::read(&key).unwrap(), old_key);
    let status = json(vault(&env, None, &["--device-key", key_arg, "--json", "status"], None));
    let kinds: Vec<_> =
        status["recent_events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect();
    assert!(
        kinds.contains(&"root_key_rotated".to_owned()) && kinds.contains(&"wrapper_key_rotated".to_owned()),
        "{kinds:?}"
    );
    let list = json(vault(&env, Some(PASS), &["--json", "msg", "list", "--conversation", "c"], None));
    assert_eq!(list["messages"][0]["body"], "kept");
}

#[test]
fn verify_names_slot_file_damage_without_unlocking() {
    let env = env();
    init(&env);
    let path = env.dir.join("keyslots");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&path, &bytes).unwrap();
    fails_with(&vault(&env, Some(PASS), &["status"], None), 3, &[PASS]);
    let out = vault(&env, Some(PASS), &["verify"], None);
    fails_with(&out, 4, &[PASS]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("DAMAGED  key slots"));
}

#[test]
fn text_output_shows_local_times_with_the_offset() {
    let env = env();
    init(&env);
    ok(vault(&env, Some(PASS), &["msg", "add", "--conversation", "c", "--sender", "a", "--body", "hello"], None));
    let backups = env.root.join("backups");
    ok(vault(&env, Some(PASS), &["backup", "run", "--dir", backups.to_str().unwrap()], None));
    for (zone, offset) in [("UTC", "+00:00"), ("Asia/Kolkata", "+05:30"), ("XST-3", "+03:00")] {
        let tz = [("TZ", zone)];
        let list = ok(vault_with(&env, &tz, &["backup", "list", "--dir", backups.to_str().unwrap()]));
        let line = list.lines().next().unwrap();
        assert!(has_local_time(line, offset), "{zone}: {line}");
        assert!(!line.contains(" ms "), "{line}");
        let msgs = ok(vault_with(&env, &tz, &["msg", "list", "--conversation", "c"]));
        assert!(has_local_time(msgs.lines().next().unwrap(), offset), "{zone}: {msgs}");
        let status = ok(vault_with(&env, &tz, &["status"]));
        let event = status.lines().find(|l| l.contains("unlock")).unwrap();
        assert!(event.contains(offset), "{zone}: {event}");
    }
    // The JSON keeps the raw epoch milliseconds.
    let list = json(vault_with(
        &env,
        &[("TZ", "Asia/Kolkata")],
        &["--json", "backup", "list", "--dir", backups.to_str().unwrap()],
    ));
    assert!(list["snapshots"][0]["created_at_ms"].as_i64().unwrap() > 1_700_000_000_000);
}

#[test]
fn prune_with_nothing_to_remove_says_so_and_rewrites_nothing() {
    let env = env();
    init(&env);
    let backups = env.root.join("backups");
    let dir = backups.to_str().unwrap();
    for body in ["one", "two", "three"] {
        ok(vault(&env, Some(PASS), &["msg", "add", "--conversation", "c", "--sender", "a", "--body", body], None));
        ok(vault(&env, Some(PASS), &["backup", "run", "--dir", dir], None));
    }
    // A manifest holds the newest snapshot only: the first two runs' packs hold chunks no
    // snapshot needs any more, and the first prune removes them, naming the new generation for
    // what it is.
    let list = json(vault(&env, Some(PASS), &["--json", "backup", "list", "--dir", dir], None));
    let listed: Vec<_> =
        list["snapshots"].as_array().unwrap().iter().map(|s| s["generation"].as_u64().unwrap()).collect();
    assert_eq!(listed, [3]);
    let pruned = ok(vault(&env, Some(PASS), &["backup", "prune", "--dir", dir, "--keep", "7"], None));
    assert!(pruned.starts_with("removed 0 snapshots, kept 1 (generation 3);"), "{pruned}");
    assert!(pruned.contains("backup generation 4 (it holds no new snapshot)"), "{pruned}");
    ok(vault(&env, Some(PASS), &["backup", "verify", "--dir", dir], None));

    // Then there is nothing to remove, and nothing is rewritten.
    let before: Vec<_> = std::fs::read_dir(&backups).unwrap().map(|e| e.unwrap().file_name()).collect();
    let pruned = ok(vault(&env, Some(PASS), &["backup", "prune", "--dir", dir, "--keep", "7"], None));
    assert_eq!(pruned.trim(), "nothing to remove; kept the one snapshot (generation 3); the backup was not rewritten");
    let after: Vec<_> = std::fs::read_dir(&backups).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(before.len(), after.len());
    let report = json(vault(&env, Some(PASS), &["--json", "backup", "prune", "--dir", dir, "--keep", "7"], None));
    assert_eq!((report["generation"].as_u64(), report["bytes_freed"].as_u64()), (Some(4), Some(0)));
    assert_eq!(report["rewritten"], false);
}

#[test]
fn status_groups_routine_unlocks_so_a_failed_unlock_stands_out() {
    let env = env();
    init(&env);
    for _ in 0..12 {
        ok(vault(&env, Some(PASS), &["msg", "list", "--conversation", "c"], None));
    }
    fails_with(&vault(&env, Some("wrong-pass"), &["status"], None), 3, &["wrong-pass"]);
    for _ in 0..3 {
        ok(vault(&env, Some(PASS), &["msg", "list", "--conversation", "c"], None));
    }
    let status = ok(vault_with(&env, &[("TZ", "UTC")], &["status"]));
    let events: Vec<&str> = status.lines().skip_while(|l| !l.starts_with("Security events")).skip(1).collect();
    // Newest first: the unlocks after the failure (with this status's own), the failed unlock
    // (recorded at the next unlock), the unlocks before it, the slot added and the vault created.
    assert_eq!(events.len(), 5, "{status}");
    assert!(events[1].contains("unlock_failed"), "{status}");
    let count = |line: &str| -> usize {
        assert!(line.contains("unlock_succeeded") && line.contains(" times since "), "{status}");
        line.split("unlock_succeeded").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
    };
    // 12 + 3 + this status's, and init's (create opens the vault it made).
    assert_eq!(count(events[0]) + count(events[2]), 17, "{status}");
    assert!(events[0].ends_with(", last: slot 0"), "{status}");
    assert!(events[3].contains("slot_added") && events[4].contains("vault_created"), "{status}");
    let raw = json(vault(&env, Some(PASS), &["--json", "status"], None));
    assert_eq!(raw["recent_events"].as_array().unwrap().len(), 10, "the JSON keeps single events");
}

#[test]
fn retention_expiry_confirms_and_show_lists_conversations() {
    let env = env();
    init(&env);
    for chat in ["family", "work"] {
        ok(vault(&env, Some(PASS), &["msg", "add", "--conversation", chat, "--sender", "a", "--body", "hi"], None));
    }
    let set = ok(vault(&env, Some(PASS), &["retention", "expiry", "family", "86400"], None));
    assert_eq!(set.lines().next(), Some("messages in family now expire after 1 day"), "{set}");
    let set = ok(vault(&env, Some(PASS), &["retention", "expiry", "work", "5400"], None));
    assert_eq!(set.lines().next(), Some("messages in work now expire after 1 hour 30 minutes"), "{set}");
    let show = ok(vault(&env, Some(PASS), &["retention", "show"], None));
    assert!(
        show.contains("disappearing messages:\n  family  after 1 day\n  work  after 1 hour 30 minutes\n"),
        "{show}"
    );
    let cleared = ok(vault(&env, Some(PASS), &["retention", "expiry", "work", "0"], None));
    assert_eq!(cleared.lines().next(), Some("messages in work no longer expire"), "{cleared}");
    let shown = json(vault(&env, Some(PASS), &["--json", "retention", "show"], None));
    assert_eq!(shown["conversation_expiries"], serde_json::json!([{ "conversation": "family", "expiry_secs": 86400 }]));
    fails_with(&vault(&env, Some(PASS), &["retention", "expiry", "nobody", "60"], None), 1, &[PASS]);
}

/// `msg list --before ID` pages back through a conversation: each page the newest `--limit`
/// before the first message of the page after it, oldest first, down to an empty page.
#[test]
fn msg_list_pages_back_with_before() {
    let env = env();
    init(&env);
    let lines: String = (0..5).map(|i| format!("message {i}\n")).collect();
    ok(vault(&env, Some(PASS), &["msg", "add", "--conversation", "c", "--sender", "s", "--stdin"], Some(&lines)));
    let page = |before: Option<i64>| -> Vec<(i64, String)> {
        let mut args = vec!["--json", "msg", "list", "--conversation", "c", "--limit", "2"];
        let before = before.map(|b| b.to_string());
        if let Some(b) = &before {
            args.extend(["--before", b.as_str()]);
        }
        let list = json(vault(&env, Some(PASS), &args, None));
        list["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["id"].as_i64().unwrap(), m["body"].as_str().unwrap().to_owned()))
            .collect()
    };
    let mut pages = Vec::new();
    let mut current = page(None);
    while let Some((first, _)) = current.first() {
        let before = *first;
        pages.insert(0, current.iter().map(|(_, body)| body.clone()).collect::<Vec<_>>());
        current = page(Some(before));
    }
    assert_eq!(pages, [vec!["message 0"], vec!["message 1", "message 2"], vec!["message 3", "message 4"]]);

    let human =
        ok(vault(&env, Some(PASS), &["msg", "list", "--conversation", "c", "--limit", "1", "--before", "3"], None));
    assert!(human.contains("message 1") && !human.contains("message 2"), "{human}");
    // An id not in the conversation is an error, not an empty page.
    let out = vault(&env, Some(PASS), &["msg", "list", "--conversation", "c", "--before", "999"], None);
    assert_ne!(out.status.code(), Some(0));
}

/// `msg rm ID…` deletes the messages, their search entries and the media attached only to them;
/// an unknown id refuses the whole command (exit 1, the id named, no content) and deletes nothing.
#[test]
fn msg_rm_deletes_messages_all_or_nothing() {
    let env = env();
    init(&env);
    let body = "SECRET-RM-BODY-7731 qqzjrmcanary";
    let lines = format!("keep one\n{body}\nkeep three\nsecond to go\n");
    ok(vault(&env, Some(PASS), &["msg", "add", "--conversation", "c", "--sender", "s", "--stdin"], Some(&lines)));
    let ids = || -> Vec<i64> {
        let list = json(vault(&env, Some(PASS), &["--json", "msg", "list", "--conversation", "c"], None));
        list["messages"].as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect()
    };
    let all = ids();
    assert_eq!(all.len(), 4);
    let photo = env.root.join("photo.bin");
    std::fs::write(&photo, b"a photo of the doomed message").unwrap();
    let (doomed, second) = (all[1].to_string(), all[3].to_string());
    ok(vault(&env, Some(PASS), &["media", "add", photo.to_str().unwrap(), "--message", &doomed], None));

    let missing = (all[3] + 100).to_string();
    let refused = fails_with(&vault(&env, Some(PASS), &["msg", "rm", &doomed, &missing], None), 1, &[PASS, body]);
    assert!(refused.contains(&format!("not found: message {missing}")), "{refused}");
    assert_eq!(ids(), all, "a refused rm deletes nothing");
    assert_eq!(vault(&env, Some(PASS), &["msg", "rm"], None).status.code(), Some(2), "ids are required");

    let report = json(vault(&env, Some(PASS), &["--json", "msg", "rm", &doomed, &second], None));
    assert_eq!(report["deleted"], serde_json::json!({ "messages": 2, "media": 1 }));
    assert_eq!(ids(), [all[0], all[2]]);
    let hits = json(vault(&env, Some(PASS), &["--json", "search", "qqzjrmcanary"], None));
    assert_eq!(hits["hits"].as_array().unwrap().len(), 0);
    assert_eq!(json(vault(&env, Some(PASS), &["--json", "search", "keep"], None))["hits"].as_array().unwrap().len(), 2);
    assert_eq!(json(vault(&env, Some(PASS), &["--json", "media", "list"], None))["media"].as_array().unwrap().len(), 0);

    let human = ok(vault(&env, Some(PASS), &["msg", "rm", &all[0].to_string()], None));
    assert_eq!(human.trim_end(), "deleted 1 message");
    assert_eq!(ids(), [all[2]]);
    let status = json(vault(&env, Some(PASS), &["--json", "status"], None));
    assert_eq!(status["counts"]["messages"], 1);
    assert_eq!(json(vault(&env, Some(PASS), &["--json", "verify"], None))["ok"], true);
}

#[test]
fn the_recovery_code_comes_from_the_environment_or_stdin_and_the_help_never_shows_it_in_argv() {
    let env = env();
    let help = vault(&env, None, &["restore", "--help"], None);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(help.contains("VAULT_RECOVERY_CODE") && help.contains("--recovery-code-stdin"), "{help}");
    assert!(!help.contains("--recovery-code "), "the argv form is hidden: {help}");
    let readme = include_str!("../../../README.md");
    assert!(!readme.contains("--recovery-code "), "the README shows no code in argv");

    // A code with a typo is refused (exit 2) before any login, so no server is needed: the
    // refusal shows where the code was read from.
    let typo = "041GA-AJFEJ-CVXRR-85N97-F761W-R5K0N-BTKZ2-EJ3HK-B1YT5-HZC24-V5Q03-2VG91";
    let base = ["restore", "--server", "http://127.0.0.1:9", "--account", "ann", "--key-only"];
    let run = |command: VaultCommand| command.arg("--vault").arg(env.root.join("new")).output();
    let with_password = || VaultCommand::new(env!("CARGO_BIN_EXE_vault")).args(base);
    let through_env = run(with_password().envs(&[("VAULT_BACKUP_PASSWORD", "pw")]).recovery_code(typo));
    assert!(fails_with(&through_env, 2, &[typo]).contains("typo"));
    let through_stdin = run(with_password()
        .arg("--recovery-code-stdin")
        .envs(&[("VAULT_BACKUP_PASSWORD", "pw")])
        .stdin(format!("{typo}\n")));
    assert!(fails_with(&through_stdin, 2, &[typo]).contains("typo"));
    // With --passphrase-stdin the code is the line after the backup password.
    let after_password =
        run(with_password().arg("--recovery-code-stdin").arg("--passphrase-stdin").stdin(format!("pw\n{typo}\n")));
    assert!(fails_with(&after_password, 2, &[typo]).contains("typo"));
    let ended = run(with_password().arg("--recovery-code-stdin").envs(&[("VAULT_BACKUP_PASSWORD", "pw")]));
    assert!(fails_with(&ended, 2, &[]).contains("before the recovery code"));
    // The argv form still works, with a warning.
    let argv = run(with_password().envs(&[("VAULT_BACKUP_PASSWORD", "pw")]).args(["--recovery-code", typo]));
    assert_eq!(argv.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&argv.stderr);
    assert!(stderr.contains("deprecated") && stderr.contains("typo"), "{stderr}");
}
