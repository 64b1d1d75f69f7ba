//! Recovery end to end, with real `backup-server` processes and the `vault` CLI: setup with two
//! servers and a recovery code, restore on new devices with every share combination, the
//! provider-blind test, brute force slowed down (across two replicas on S3) and guarded by login
//! tickets, recovery-attempt alerts on the enrolled device, a data server hiding newer snapshots,
//! share refresh, password change, device revocation and server-key pinning.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Output;

use test_support::canary::assert_absent;
use test_support::cli::{json, ok, vault};
use test_support::fs::{account_file, copy_dir, find_files};
use test_support::s3::{S3Env, s3_env};
use test_support::server::{RestartableServer, run_server};
use test_support::workspace_binary;

const PASSWORD: &str = "correct horse battery staple 7";
const ACCOUNT: &str = "alice-recovery-canary@example.org";
const CANARY: &str = "RECOVERY-CANARY-MESSAGE";
const MEDIA_CANARY: &[u8] = b"RECOVERY-MEDIA-CANARY-SAMPLE";
/// Login rate limits off: these tests log in many times from one address.
const NO_RATE_LIMITS: [&str; 4] = ["--rate-limit-per-ip", "0", "--rate-limit-per-account", "0"];

/// A server with a fixed address and data directory, restartable, with login rate limits off.
fn guardian(data: PathBuf, extra: &[&str]) -> RestartableServer {
    RestartableServer::start(data, &[&NO_RATE_LIMITS[..], extra].concat())
}

fn run(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    vault(dir, "device passphrase", args, envs, "")
}

fn password(p: &str) -> [(&'static str, String); 1] {
    [("VAULT_BACKUP_PASSWORD", p.to_owned())]
}

fn with_password<'a>(p: &'a [(&'static str, String); 1]) -> Vec<(&'static str, &'a str)> {
    p.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A phone with messages (with canaries) and a media item, set up with `servers` and the
/// recovery code, backed up once. Returns the setup's JSON.
fn phone_with_backup(phone: &Path, work: &Path, servers: &[String]) -> serde_json::Value {
    phone_with_backup_env(phone, work, servers, &[])
}

/// [`phone_with_backup`] with extra environment for the setup (a login ticket).
fn phone_with_backup_env(phone: &Path, work: &Path, servers: &[String], envs: &[(&str, &str)]) -> serde_json::Value {
    ok(run(phone, &["init"], &[]));
    let lines: String = (0..400).map(|i| format!("{CANARY}-{i} see you at eight\n")).collect();
    ok(vault(
        phone,
        "device passphrase",
        &["msg", "add", "--conversation", "family", "--sender", "ann", "--stdin"],
        &[],
        &lines,
    ));
    let photo = work.join("photo.bin");
    let mut bytes: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    bytes[..MEDIA_CANARY.len()].copy_from_slice(MEDIA_CANARY);
    std::fs::write(&photo, &bytes).unwrap();
    ok(run(phone, &["media", "add", photo.to_str().unwrap(), "--conversation", "family"], &[]));
    let mut args = vec!["--json", "backup", "setup", "--account", ACCOUNT];
    for s in servers {
        args.extend(["--server", s.as_str()]);
    }
    let pw = password(PASSWORD);
    let mut env = with_password(&pw);
    env.extend_from_slice(envs);
    let setup = json(run(phone, &args, &env));
    let backup = json(run(phone, &["--json", "backup", "run"], &[]));
    assert_eq!(backup["generation"], 1);
    assert_eq!(backup["head_copies_failed"].as_array().unwrap().len(), 0, "{backup}");
    setup
}

fn restore_args<'a>(servers: &'a [String], code: Option<&'a str>, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--json", "restore", "--account", ACCOUNT];
    for s in servers {
        args.extend(["--server", s.as_str()]);
    }
    if let Some(code) = code {
        // The code goes through VAULT_RECOVERY_CODE, never argv.
        args.extend([test_support::cli::RECOVERY_CODE, code]);
    }
    args.extend_from_slice(extra);
    args
}

fn messages(dir: &Path) -> serde_json::Value {
    json(run(dir, &["--json", "msg", "list", "--conversation", "family", "--limit", "10000"], &[]))["messages"].clone()
}

#[test]
fn restore_on_new_devices_with_each_share_combination() {
    let work = tempfile::tempdir().unwrap();
    let mut a = guardian(work.path().join("server-a"), &[]);
    let b = guardian(work.path().join("server-b"), &[]);
    let servers = [a.url(), b.url()];
    let phone = work.path().join("phone");
    let setup = phone_with_backup(&phone, work.path(), &servers);
    assert_eq!(setup["policy"], "2 of {2 servers, recovery code}");
    assert_eq!(setup["single_provider"], false);
    let code = setup["recovery_code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 71, "{code}");
    ok(vault(
        &phone,
        "device passphrase",
        &["msg", "add", "--conversation", "family", "--sender", "bo", "--body", "after the first backup"],
        &[],
        "",
    ));
    assert_eq!(json(run(&phone, &["--json", "backup", "run"], &[]))["generation"], 2);
    // A directory backup would start a second history: refused with the reason, not as damage.
    let elsewhere = work.path().join("usb-stick");
    let refused = run(&phone, &["backup", "run", "--dir", elsewhere.to_str().unwrap()], &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused)
            .contains("this vault backs up to its guardian servers; a directory backup would start a second history"),
        "{}",
        stderr(&refused)
    );
    let status = json(run(&phone, &["--json", "status"], &[]));
    assert_eq!(status["recovery"]["safety_number"], setup["safety_number"]);
    let pw = password(PASSWORD);
    let env = with_password(&pw);

    // Both servers, no code: restored exactly, enrolled, same safety number.
    let tablet = work.path().join("tablet");
    let restored = json(run(&tablet, &restore_args(&servers, None, &[]), &env));
    assert_eq!(restored["generation"], 2);
    assert_eq!(restored["recovery_code_used"], false);
    assert_eq!(restored["enrolled"], true);
    assert_eq!(messages(&tablet), messages(&phone));
    assert_eq!(json(run(&tablet, &["--json", "status"], &[]))["recovery"]["safety_number"], setup["safety_number"]);
    // The restored device continues the backup history.
    assert_eq!(json(run(&tablet, &["--json", "backup", "run"], &[]))["generation"], 3);

    // The data server plus the recovery code: the escrow's guardian list reaches the other
    // server too, which attests the head; the laptop is enrolled (and takes the backup over).
    let laptop = work.path().join("laptop");
    let restored = json(run(&laptop, &restore_args(&servers[..1], Some(&code), &[]), &env));
    assert_eq!(restored["recovery_code_used"], true);
    assert_eq!(restored["enrolled"], true);
    assert_eq!(restored["freshness"]["by"], serde_json::json!([servers[1].clone()]));
    assert_eq!(messages(&laptop), messages(&phone));

    // One server alone: too few shares, nothing written.
    let alone = work.path().join("alone");
    let out = run(&alone, &restore_args(&servers[..1], None, &[]), &env);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("2 shares are needed, 1 available"), "{}", stderr(&out));
    assert!(!alone.exists());

    // A typo in the code is caught by its checksum before any login.
    let mut typo: Vec<char> = code.chars().collect();
    typo[7] = if typo[7] == 'A' { 'B' } else { 'A' };
    let typo: String = typo.into_iter().collect();
    let out = run(&alone, &restore_args(&servers[..1], Some(&typo), &[]), &env);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("typo"), "{}", stderr(&out));

    // A well-formed code of another account (same policy shape) fails the key check.
    let other = work.path().join("other");
    ok(run(&other, &["init"], &[]));
    let other_setup = json(run(
        &other,
        &["--json", "backup", "setup", "--account", "bob", "--server", &servers[0], "--server", &servers[1]],
        &env,
    ));
    let foreign = other_setup["recovery_code"].as_str().unwrap();
    let out = run(&alone, &restore_args(&servers[..1], Some(foreign), &[]), &env);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("recovery code does not match"), "{}", stderr(&out));
    assert!(!alone.exists());

    // A wrong password: exit 3, each server named.
    let wrong = password("not the password");
    let out = run(&alone, &restore_args(&servers, None, &[]), &with_password(&wrong));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong password, or too many recent attempts"), "{}", stderr(&out));

    // The guardian server alone with the code: its escrow lists the data server, which the
    // restore reaches and restores from.
    let key_only = json(run(&alone, &restore_args(&servers[1..], Some(&code), &["--key-only"]), &env));
    assert_eq!(key_only["recovery_code_used"], true);
    assert!(!alone.exists());
    let restored = json(run(&alone, &restore_args(&servers[1..], Some(&code), &[]), &env));
    assert_eq!(restored["servers_used"], serde_json::json!([servers[0].clone(), servers[1].clone()]));
    assert_eq!(messages(&alone), messages(&phone));
    // With the data server down, the mirror (the other server) holds the data; but then no
    // other guardian can attest that it is the newest: refused unless accepted explicitly.
    a.stop();
    let unreached = work.path().join("unreached");
    let out = run(&unreached, &restore_args(&servers[1..], Some(&code), &[]), &env);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("--accept-unverified-freshness"), "{}", stderr(&out));
    assert!(!unreached.exists());
    let from_mirror =
        json(run(&unreached, &restore_args(&servers[1..], Some(&code), &["--accept-unverified-freshness"]), &env));
    assert_eq!(from_mirror["freshness"]["state"], "unverified");
    assert_eq!(messages(&unreached), messages(&phone));
}

#[test]
fn one_servers_whole_state_and_the_password_decrypt_nothing() {
    let work = tempfile::tempdir().unwrap();
    let mut a = guardian(work.path().join("server-a"), &[]);
    let mut b = guardian(work.path().join("server-b"), &[]);
    let servers = [a.url(), b.url()];
    let phone = work.path().join("phone");
    let setup = phone_with_backup(&phone, work.path(), &servers);
    let code = setup["recovery_code"].as_str().unwrap().to_owned();
    let pw = password(PASSWORD);
    let env = with_password(&pw);

    // The operator of A (or a thief of its disk) has everything A stores, its ServerSetup secret,
    // and the right password: one share of two.
    a.stop();
    let stolen_dir = work.path().join("stolen");
    copy_dir(&a.data, &stolen_dir);
    assert!(find_files(&stolen_dir, "").iter().any(|f| f.file_name().unwrap().to_str().unwrap().contains("setup")));
    let stolen = guardian(stolen_dir.clone(), &[]);
    let thief = work.path().join("thief");
    let out = run(&thief, &restore_args(&[stolen.url()], None, &["--key-only"]), &env);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("2 shares are needed, 1 available"), "{}", stderr(&out));
    // With B down as well, still nothing.
    b.stop();
    let out = run(&thief, &restore_args(&[stolen.url(), servers[1].clone()], None, &[]), &env);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(!thief.exists());
    b.restart();

    // A forged or damaged escrow record at A is refused; B and the code still recover.
    let escrow = find_files(&a.data, "escrow");
    assert_eq!(escrow.len(), 1);
    let mut bytes = std::fs::read(&escrow[0]).unwrap();
    bytes[100] ^= 0x20;
    std::fs::write(&escrow[0], &bytes).unwrap();
    a.restart();
    let out = run(&thief, &restore_args(&servers, None, &["--key-only"]), &env);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("escrow record does not open"), "{}", stderr(&out));
    let recovered = json(run(&thief, &restore_args(&servers, Some(&code), &["--key-only"]), &env));
    assert_eq!(recovered["recovery_code_used"], true);
    assert_eq!(recovered["servers_used"].as_array().unwrap().len(), 1);

    // Every byte every server stored (and the stolen copy), and every file of the phone's vault.
    let code_compact: String = code.chars().filter(|c| *c != '-').collect();
    let needles: [(&str, &[u8]); 6] = [
        ("message canary", CANARY.as_bytes()),
        ("media sample", MEDIA_CANARY),
        ("account name", ACCOUNT.as_bytes()),
        ("backup password", PASSWORD.as_bytes()),
        ("recovery code", code.as_bytes()),
        ("recovery code (compact)", code_compact.as_bytes()),
    ];
    let scanned: u64 =
        [&a.data, &b.data, &stolen_dir, &phone].iter().map(|dir| assert_absent(dir, &needles).bytes).sum();
    assert!(scanned > 600_000, "the scan covered the stored bytes ({scanned})");
}

/// `limit` wrong passwords through `urls` in turn spend the free logins: the right password then
/// fails too (an hour's delay, which a stranger without a ticket is not told about), until the
/// operator unlocks the account.
fn brute_force_delays(urls: &[String], work: &Path, code: &str, limit: usize, unlock: impl FnOnce()) {
    let attacker = work.join("attacker");
    let wrong = password("guess");
    for attempt in 0..limit {
        let url = &urls[attempt % urls.len()];
        let out = run(
            &attacker,
            &restore_args(std::slice::from_ref(url), Some(code), &["--key-only"]),
            &with_password(&wrong),
        );
        assert_eq!(out.status.code(), Some(3), "attempt {attempt}: {}", stderr(&out));
    }
    let right = password(PASSWORD);
    for url in urls {
        let out = run(
            &attacker,
            &restore_args(std::slice::from_ref(url), Some(code), &["--key-only"]),
            &with_password(&right),
        );
        assert_eq!(out.status.code(), Some(3), "delayed at {url}: {}", stderr(&out));
    }
    unlock();
    let recovered =
        json(run(&attacker, &restore_args(&urls[..1], Some(code), &["--key-only"]), &with_password(&right)));
    assert_eq!(recovered["recovery_code_used"], true);
}

#[test]
fn wrong_passwords_delay_the_escrow_until_the_operator_unlocks() {
    let work = tempfile::tempdir().unwrap();
    let mut a =
        guardian(work.path().join("server-a"), &["--login-attempt-limit", "4", "--login-delay-base-secs", "3600"]);
    let phone = work.path().join("phone");
    let setup = phone_with_backup(&phone, work.path(), &[a.url()]);
    assert_eq!(setup["policy"], "2 of {1 server, recovery code}");
    let code = setup["recovery_code"].as_str().unwrap().to_owned();
    let data = a.data.clone();
    let url = a.url();
    brute_force_delays(&[url], work.path(), &code, 4, || {
        a.stop();
        let args = ["--data-dir", data.to_str().unwrap(), "unlock-account", "--account", ACCOUNT];
        let out = run_server(&workspace_binary("backup-server"), &args, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        a.restart();
    });
}

#[test]
#[cfg_attr(not(s3_available), ignore = "needs an S3 server: run scripts/test.sh")]
fn wrong_passwords_through_two_replicas_count_together() {
    let S3Env { endpoint, bucket } = s3_env();
    let work = tempfile::tempdir().unwrap();
    let suffix: String =
        work.path().file_name().unwrap().to_str().unwrap().chars().filter(char::is_ascii_alphanumeric).collect();
    let store = format!("s3://{bucket}/recovery-{}", suffix.to_lowercase());
    let setup_file = work.path().join("setup.key");
    // A local server makes the setup file; both replicas share it.
    drop(guardian(work.path().join("setup-maker"), &["--setup-file", setup_file.to_str().unwrap()]));
    let shared: Vec<String> = [
        "--store",
        &store,
        "--s3-endpoint",
        &endpoint,
        "--s3-allow-http",
        "--setup-file",
        setup_file.to_str().unwrap(),
        "--login-attempt-limit",
        "4",
        "--login-delay-base-secs",
        "3600",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let shared_args: Vec<&str> = shared.iter().map(String::as_str).collect();
    let one = guardian(work.path().join("replica-1"), &shared_args);
    let two = guardian(work.path().join("replica-2"), &shared_args);
    let phone = work.path().join("phone");
    let setup = phone_with_backup(&phone, work.path(), &[one.url()]);
    let code = setup["recovery_code"].as_str().unwrap().to_owned();
    brute_force_delays(&[one.url(), two.url()], work.path(), &code, 4, || {
        let unlock_dir = work.path().join("unlock");
        let mut args = vec!["--data-dir", unlock_dir.to_str().unwrap()];
        args.extend_from_slice(&shared_args);
        args.extend(["unlock-account", "--account", ACCOUNT]);
        let out = run_server(&workspace_binary("backup-server"), &args, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
    });
}

#[test]
fn a_data_server_hiding_newer_snapshots_is_detected() {
    let work = tempfile::tempdir().unwrap();
    let mut a = guardian(work.path().join("server-a"), &[]);
    let b = guardian(work.path().join("server-b"), &[]);
    let servers = [a.url(), b.url()];
    let phone = work.path().join("phone");
    phone_with_backup(&phone, work.path(), &servers);
    a.stop();
    let old_state = work.path().join("server-a-at-generation-1");
    copy_dir(&a.data, &old_state);
    a.restart();
    ok(vault(
        &phone,
        "device passphrase",
        &["msg", "add", "--conversation", "family", "--sender", "bo", "--body", "newer"],
        &[],
        "",
    ));
    assert_eq!(json(run(&phone, &["--json", "backup", "run"], &[]))["generation"], 2);
    // A serves its generation-1 state again; B's head copy says 2.
    a.stop();
    std::fs::remove_dir_all(&a.data).unwrap();
    copy_dir(&old_state, &a.data);
    a.restart();
    let pw = password(PASSWORD);
    let newcomer = work.path().join("new-phone");
    let out = run(&newcomer, &restore_args(&servers, None, &[]), &with_password(&pw));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("hides newer snapshots"), "{}", stderr(&out));
    assert!(!newcomer.exists());
    // The phone itself remembers generation 2.
    let out = run(&phone, &["backup", "run"], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
}

#[test]
fn refresh_password_change_revocation_and_server_key_pinning() {
    let work = tempfile::tempdir().unwrap();
    let a = guardian(work.path().join("server-a"), &[]);
    let mut b = guardian(work.path().join("server-b"), &[]);
    let servers = [a.url(), b.url()];
    let phone = work.path().join("phone");
    let first = phone_with_backup(&phone, work.path(), &servers);
    let pw = password(PASSWORD);
    let env = with_password(&pw);
    let probe = work.path().join("probe");

    // Setting up again splits the key anew and replaces this device's tokens.
    let setup = json(run(
        &phone,
        &["--json", "backup", "setup", "--account", ACCOUNT, "--server", &servers[0], "--server", &servers[1]],
        &env,
    ));
    let devices = json(run(&phone, &["--json", "backup", "devices"], &[]));
    for guardian in devices["guardians"].as_array().unwrap() {
        assert_eq!(guardian["devices"].as_array().unwrap().len(), 1, "{guardian}");
    }
    let first_code = first["recovery_code"].as_str().unwrap();
    let out = run(&probe, &restore_args(&servers[..1], Some(first_code), &["--key-only"]), &env);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let old_code = setup["recovery_code"].as_str().unwrap().to_owned();

    // Refresh: the old code stops working, the new one works.
    let refreshed = json(run(&phone, &["--json", "backup", "refresh-shares"], &env));
    let new_code = refreshed["recovery_code"].as_str().unwrap().to_owned();
    assert_ne!(new_code, old_code);
    let out = run(&probe, &restore_args(&servers[..1], Some(&old_code), &["--key-only"]), &env);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    ok(run(&probe, &restore_args(&servers[..1], Some(&new_code), &["--key-only"]), &env));
    // A new recovery code is a refresh too.
    let newest_code = json(run(&phone, &["--json", "backup", "new-recovery-code"], &env))["recovery_code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        run(&probe, &restore_args(&servers[..1], Some(&new_code), &["--key-only"]), &env).status.code(),
        Some(3)
    );

    // Password change: the old password stops working, the new one and the code still do.
    let new_pw = "a much better passphrase 2026";
    ok(run(
        &phone,
        &["backup", "password"],
        &[("VAULT_BACKUP_PASSWORD", PASSWORD), ("VAULT_BACKUP_NEW_PASSWORD", new_pw)],
    ));
    let out = run(&probe, &restore_args(&servers, None, &["--key-only"]), &env);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let new_env = [("VAULT_BACKUP_PASSWORD", new_pw)];
    ok(run(&probe, &restore_args(&servers, None, &["--key-only"]), &new_env));
    ok(run(&probe, &restore_args(&servers[1..], Some(&newest_code), &["--key-only"]), &new_env));
    assert!(!probe.exists());

    // A second device, then its revocation from the phone: its token stops working at once.
    let tablet = work.path().join("tablet");
    let mut args = restore_args(&servers, None, &["--device-name", "tablet"]);
    args.retain(|a| *a != "--json");
    ok(run(&tablet, &args, &new_env));
    ok(run(&tablet, &["backup", "run"], &[]));
    let devices = json(run(&phone, &["--json", "backup", "devices"], &[]));
    for guardian in devices["guardians"].as_array().unwrap() {
        let names: Vec<&str> =
            guardian["devices"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"tablet") && names.iter().any(|n| n.starts_with("vault cli (")), "{names:?}");
    }
    // The tablet took the backup over when it restored, so the phone revokes it but cannot
    // rotate the key of a backup another device writes: it says so (exit 7) and what to do.
    let refused = run(&phone, &["--json", "backup", "devices", "--revoke", "tablet"], &new_env);
    assert_eq!(refused.status.code(), Some(7), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("revoked at every guardian, but the backup key was NOT rotated"),
        "{}",
        stderr(&refused)
    );
    let out = run(&tablet, &["backup", "run"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("refused this device's token"), "{}", stderr(&out));
    // The tablet took the backup over when it restored: the phone no longer writes to it.
    let out = run(&phone, &["backup", "run"], &[]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    // Server B is replaced by one with another key, where someone registered the account anew.
    b.stop();
    std::fs::remove_dir_all(&b.data).unwrap();
    b.restart();
    let intruder = work.path().join("intruder");
    ok(run(&intruder, &["init"], &[]));
    let weak = json(run(
        &intruder,
        &[
            "--json",
            "backup",
            "setup",
            "--account",
            ACCOUNT,
            "--server",
            &servers[1],
            "--threshold",
            "1",
            "--no-recovery-code",
            "--allow-single-provider",
        ],
        &new_env,
    ));
    assert_eq!(weak["single_provider"], true);
    let status = String::from_utf8(ok(run(&intruder, &["status"], &[])).into_bytes()).unwrap();
    assert!(status.contains("WARNING: one provider alone"), "{status}");
    let refused = run(&phone, &["backup", "refresh-shares"], &new_env);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("differs from the one pinned"), "{}", stderr(&refused));
    let events = json(run(&phone, &["--json", "status"], &[]))["recent_events"].to_string();
    assert!(events.contains("server_key_changed"), "{events}");
    // Without --allow-single-provider that policy is refused.
    let out =
        run(&intruder, &["backup", "setup", "--account", "x", "--server", &servers[1], "--threshold", "1"], &new_env);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

fn this_device(dir: &Path) -> String {
    let devices = json(run(dir, &["--json", "backup", "devices"], &[]));
    devices["guardians"][0]["this_device"].as_str().unwrap().to_owned()
}

#[test]
fn a_restore_takes_the_backup_over_and_revocation_cannot_cut_off_by_accident() {
    let work = tempfile::tempdir().unwrap();
    let a = guardian(work.path().join("server-a"), &[]);
    let b = guardian(work.path().join("server-b"), &[]);
    let servers = [a.url(), b.url()];
    let pw = password(PASSWORD);
    let env = with_password(&pw);

    // Device A sets up and backs up; device B restores, which takes the backup over.
    let device_a = work.path().join("device-a");
    phone_with_backup(&device_a, work.path(), &servers);
    let a_id = this_device(&device_a);
    let device_b = work.path().join("device-b");
    let restored = json(run(&device_b, &restore_args(&servers, None, &[]), &env));
    assert_eq!(restored["enrolled"], true);
    assert_eq!(restored["took_over_from"], a_id.as_str());
    let b_id = this_device(&device_b);
    ok(vault(
        &device_b,
        "device passphrase",
        &["msg", "add", "--conversation", "family", "--sender", "bo", "--body", "FROM-DEVICE-B"],
        &[],
        "",
    ));
    assert_eq!(json(run(&device_b, &["--json", "backup", "run"], &[]))["generation"], 2);

    // A's next backup is refused with the takeover exit code, naming B; nothing is overwritten.
    ok(vault(
        &device_a,
        "device passphrase",
        &["msg", "add", "--conversation", "family", "--sender", "ann", "--body", "FROM-DEVICE-A"],
        &[],
        "",
    ));
    let out = run(&device_a, &["backup", "run"], &[]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("taken over by device {b_id} on ")), "{}", stderr(&out));
    assert!(stderr(&out).contains("this device no longer writes to it"), "{}", stderr(&out));
    // A can still read the backup.
    ok(run(&device_a, &["backup", "list"], &[]));

    // A fresh restore has B's message (generation 2), not A's.
    let device_c = work.path().join("device-c");
    let restored = json(run(&device_c, &restore_args(&servers, None, &["--device-name", "twin"]), &env));
    assert_eq!(restored["generation"], 2);
    assert_eq!(restored["took_over_from"], b_id.as_str());
    let bodies = messages(&device_c).to_string();
    assert!(bodies.contains("FROM-DEVICE-B") && !bodies.contains("FROM-DEVICE-A"), "{bodies}");

    // Default names differ (platform and a short id); a name several devices carry is refused
    // with the list, and nothing is revoked.
    let names: Vec<String> = json(run(&device_c, &["--json", "backup", "devices"], &[]))["guardians"][0]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect();
    let defaults: Vec<&String> = names.iter().filter(|n| n.starts_with("vault cli (")).collect();
    assert_eq!(defaults.len(), 2, "{names:?}");
    assert_ne!(defaults[0], defaults[1]);
    let device_d = work.path().join("device-d");
    ok(run(&device_d, &restore_args(&servers, None, &["--device-name", "twin"]), &env));
    let out = run(&device_c, &["backup", "devices", "--revoke", "twin"], &env);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("4 devices carry that name"), "{}", stderr(&out));
    assert!(stderr(&out).contains(&this_device(&device_d)), "{}", stderr(&out));
    ok(run(&device_c, &["backup", "devices"], &[]));

    // Revoking this device needs the explicit flag.
    let out = run(&device_b, &["backup", "devices", "--revoke", &b_id], &env);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--revoke-this-device"), "{}", stderr(&out));
    ok(run(&device_b, &["backup", "devices"], &[]));
    let revoked =
        json(run(&device_b, &["--json", "backup", "devices", "--revoke", &b_id, "--revoke-this-device"], &env));
    assert_eq!(revoked["revoked"], 2, "its enrolment at each guardian");
    let out = run(&device_b, &["backup", "run"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // The device that restored last writes the backup.
    assert_eq!(json(run(&device_d, &["--json", "backup", "run"], &[]))["generation"], 3);
}

/// Adversaries: a thief holding the lost phone (its vault, so its backup key) and its recovery
/// code, helped by the data server, which replays its escrow and head records from before the
/// revocation; and the data server alone rolling the head back while the other guardian is
/// unreachable. Real servers, the real CLI.
#[test]
fn a_revocation_rotates_the_key_and_a_rolled_back_head_needs_an_explicit_choice() {
    let work = tempfile::tempdir().unwrap();
    let mut a = guardian(work.path().join("server-a"), &[]);
    let mut b = guardian(work.path().join("server-b"), &[]);
    let servers = [a.url(), b.url()];
    let pw = password(PASSWORD);
    let env = with_password(&pw);
    let phone = work.path().join("phone");
    let old_code = phone_with_backup(&phone, work.path(), &servers)["recovery_code"].as_str().unwrap().to_owned();
    let lost_phone_id = this_device(&phone);
    // What the data server keeps from before the revocation.
    let (old_escrow, old_head) = (
        std::fs::read(account_file(&a.data, "escrow")).unwrap(),
        std::fs::read(account_file(&a.data, "head")).unwrap(),
    );

    // The phone is lost: a new device restores, revokes it (which rotates the key) and backs up.
    let new = work.path().join("new");
    ok(run(&new, &restore_args(&servers, None, &[]), &env));
    let revoked = json(run(&new, &["--json", "backup", "devices", "--revoke", &lost_phone_id], &env));
    assert_eq!((revoked["revoked"].as_u64(), revoked["key_rotated"].as_bool()), (Some(2), Some(true)), "{revoked}");
    let new_code = revoked["recovery_code"].as_str().unwrap().to_owned();
    assert_ne!(new_code, old_code);
    let (new_escrow, rotated_head) = (
        std::fs::read(account_file(&a.data, "escrow")).unwrap(),
        std::fs::read(account_file(&a.data, "head")).unwrap(),
    );
    let body = ["msg", "add", "--conversation", "family", "--sender", "bo", "--body", "AFTER-REVOCATION-CANARY"];
    ok(vault(&new, "device passphrase", &body, &[], ""));
    assert_eq!(json(run(&new, &["--json", "backup", "run"], &[]))["generation"], 2);

    // The lost phone's own token is refused.
    let out = run(&phone, &["backup", "run"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // The data server replays the old escrow; B is out of reach. The old code recovers the old
    // key, which opens nothing written since: the restore fails as damage and leaves nothing.
    std::fs::write(account_file(&a.data, "escrow"), &old_escrow).unwrap();
    b.stop();
    let thief = work.path().join("thief");
    ok(run(&thief, &restore_args(&servers[..1], Some(&old_code), &["--key-only"]), &env));
    let accept = ["--accept-unverified-freshness"];
    let out = run(&thief, &restore_args(&servers[..1], Some(&old_code), &accept), &env);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("failed authentication"), "{}", stderr(&out));
    assert!(!thief.exists());
    // With the old head replayed too, the thief gets the snapshot from before the revocation,
    // which the phone held anyway, and nothing written after it.
    std::fs::write(account_file(&a.data, "head"), &old_head).unwrap();
    let stale = json(run(&thief, &restore_args(&servers[..1], Some(&old_code), &accept), &env));
    assert_eq!(stale["generation"], 1);
    assert_eq!(stale["freshness"]["state"], "unverified");
    assert!(!messages(&thief).to_string().contains("AFTER-REVOCATION-CANARY"));

    // The data server (honest escrow again) rolls its head back to the rotated generation 1.
    std::fs::write(account_file(&a.data, "escrow"), &new_escrow).unwrap();
    std::fs::write(account_file(&a.data, "head"), &rotated_head).unwrap();
    b.restart();
    // Given one server and the code, the restore still reaches B through the escrow's list, and
    // B's head copy exposes the rollback.
    let target = work.path().join("rolled-back");
    let out = run(&target, &restore_args(&servers[..1], Some(&new_code), &[]), &env);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("hides newer snapshots"), "{}", stderr(&out));
    // With B unreachable nothing vouches for A's head: refused by default, leaving nothing...
    b.stop();
    let out = run(&target, &restore_args(&servers[..1], Some(&new_code), &[]), &env);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("--accept-unverified-freshness"), "{}", stderr(&out));
    assert!(!target.exists());
    // ...and restored only when accepted, the result marked unverified.
    let accepted = json(run(&target, &restore_args(&servers[..1], Some(&new_code), &accept), &env));
    assert_eq!(accepted["generation"], 1);
    assert_eq!(accepted["freshness"]["state"], "unverified");
    assert_eq!(accepted["enrolled"], false);
    b.restart();
    a.stop();
}

/// A stranger who knows the account name and an attacker guessing at a guardian, against the
/// recommended deployment (an authoriser at server A) and a plain server B: starts without a
/// ticket are refused at A before they count (exit 3, naming VAULT_LOGIN_TICKET); guesses at B
/// are counted; the owner recovers with a ticket. The enrolled phone sees the guesses and the
/// recovery as security events after its next backup run, `vault status` tallies them, and with
/// a ticket a delay is reported as one (exit 5). Once the phone's enrolment is revoked it reads
/// nothing new.
#[test]
fn an_enrolled_device_sees_recovery_attempts_and_a_revoked_one_sees_nothing() {
    let work = tempfile::tempdir().unwrap();
    let server = workspace_binary("backup-server");
    let key_file = work.path().join("account-service.key");
    let keygen = run_server(&server, &["ticket-keygen", "--out", key_file.to_str().unwrap()], &[]);
    assert!(keygen.status.success(), "{}", stderr(&keygen));
    let public_key = String::from_utf8(keygen.stdout).unwrap().trim().to_owned();
    let issue = |account: &str| {
        let args = ["issue-ticket", "--signing-key", key_file.to_str().unwrap(), "--account", account];
        let out = run_server(&server, &args, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let delays = ["--login-attempt-limit", "3", "--login-delay-base-secs", "3600"];
    let mut a =
        guardian(work.path().join("server-a"), &[&delays[..], &["--login-authoriser-key", &public_key]].concat());
    let b = guardian(work.path().join("server-b"), &delays);
    let servers = [a.url(), b.url()];
    let ticket = issue(ACCOUNT);
    let with_ticket = [("VAULT_LOGIN_TICKET", ticket.as_str())];
    let phone = work.path().join("phone");
    let setup = phone_with_backup_env(&phone, work.path(), &servers, &with_ticket);
    let code = setup["recovery_code"].as_str().unwrap().to_owned();
    let right = password(PASSWORD);
    let wrong = password("a stranger's guess");

    // Without a ticket server A answers nothing; a ticket for another account is no better.
    let stranger = work.path().join("stranger");
    let other = issue("someone-else@example.org");
    for envs in [vec![], vec![("VAULT_LOGIN_TICKET", other.as_str())]] {
        let mut env = with_password(&wrong);
        env.extend_from_slice(&envs);
        let out = run(&stranger, &restore_args(&servers[..1], Some(&code), &["--key-only"]), &env);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(stderr(&out).contains("VAULT_LOGIN_TICKET"), "{}", stderr(&out));
    }
    // Server B has no authoriser: two guesses there are counted.
    for _ in 0..2 {
        let out = run(&stranger, &restore_args(&servers[1..], Some(&code), &["--key-only"]), &with_password(&wrong));
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    }
    // The owner, with a ticket, recovers the key from both (nothing of the above counted at A).
    let mut owner_env = with_password(&right);
    owner_env.extend_from_slice(&with_ticket);
    let owner = work.path().join("owner");
    ok(run(&owner, &restore_args(&servers, None, &["--key-only"]), &owner_env));

    // The phone's next backup run reads both logs.
    let backup = json(run(&phone, &["--json", "backup", "run"], &[]));
    let events = backup["guardian_events"]["new_events"].as_array().unwrap().clone();
    assert!(backup["guardian_events"]["unread"].as_array().unwrap().is_empty(), "{backup}");
    let count = |guardian: usize, kind: &str, detail: &str| {
        let name = format!("guardian {guardian} ({})", servers[guardian - 1]);
        events
            .iter()
            .filter(|e| e["kind"] == kind)
            .filter(|e| {
                e["detail"].as_str().unwrap().starts_with(&name) && e["detail"].as_str().unwrap().contains(detail)
            })
            .count()
    };
    assert_eq!(
        count(1, "guardian_login_started", ", with a login ticket"),
        1,
        "only the owner's start at A: {events:?}"
    );
    assert_eq!(count(1, "guardian_login_started", ""), 1, "{events:?}");
    assert_eq!(count(2, "guardian_login_started", ""), 3, "two guesses and the owner's: {events:?}");
    assert_eq!(count(2, "guardian_login_succeeded", ""), 1);
    assert_eq!(count(1, "guardian_escrow_read", ""), 1);
    assert_eq!(count(2, "guardian_escrow_read", ""), 1);
    let status = ok(run(&phone, &["status"], &[]));
    assert!(status.contains("Recovery attempts at the guardians"), "{status}");
    // Over the last 30 days, with the setup's logins: one failed guess at A was not even counted.
    assert!(status.contains(&format!("guardian 1 ({}): 2 login attempts (2 succeeded)", servers[0])), "{status}");
    assert!(status.contains(&format!("guardian 2 ({}): 4 login attempts (2 succeeded)", servers[1])), "{status}");

    // With a ticket, three wrong passwords at A are reported as such; then A says to wait.
    let mut guesser_env = with_password(&wrong);
    guesser_env.extend_from_slice(&with_ticket);
    for _ in 0..3 {
        let out = run(&stranger, &restore_args(&servers[..1], Some(&code), &["--key-only"]), &guesser_env);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    }
    let out = run(&stranger, &restore_args(&servers[..1], Some(&code), &["--key-only"]), &owner_env);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("retry in"), "{}", stderr(&out));
    let events = json(run(&phone, &["--json", "backup", "events"], &[]));
    let delayed = events["new_events"].as_array().unwrap().iter().filter(|e| e["kind"] == "guardian_login_delayed");
    assert_eq!(delayed.count(), 1, "{events}");

    // The operator ends the delay; the phone revokes its own enrolment (a password login at
    // both): later guesses are not shown to it.
    a.stop();
    let unlock = ["--data-dir", a.data.to_str().unwrap(), "unlock-account", "--account", ACCOUNT];
    let out = run_server(&server, &unlock, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    a.restart();
    let this = this_device(&phone);
    let mut revoke_env = with_password(&right);
    revoke_env.extend_from_slice(&with_ticket);
    ok(run(&phone, &["backup", "devices", "--revoke", &this, "--revoke-this-device"], &revoke_env));
    let out = run(&stranger, &restore_args(&servers[1..], Some(&code), &["--key-only"]), &with_password(&wrong));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let after = json(run(&phone, &["--json", "backup", "events"], &[]));
    assert_eq!(after["new_events"].as_array().unwrap().len(), 0, "{after}");
    assert_eq!(after["unread"].as_array().unwrap().len(), 2, "{after}");
}

/// Objects and sizes stored for the one account on a local-store server.
fn stored_objects(server_data: &Path) -> Vec<String> {
    let accounts = server_data.join("objects").join("accounts");
    let mut names = Vec::new();
    for account in std::fs::read_dir(&accounts).unwrap() {
        let objects = account.unwrap().path().join("objects");
        if let Ok(entries) = std::fs::read_dir(&objects) {
            names.extend(entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()));
        }
    }
    names.sort();
    names
}

/// A thief with the phone's device token (here one enrolled for the test: it can do exactly what
/// the phone's can) tries to destroy the backup: deleting objects and rewinding the head fail with
/// a clear error, a prune without the password is refused, and a new device then restores the
/// newest snapshot intact. The owner's prune with the password works, its deletions stay
/// restorable, and `vault backup deleted --restore` puts them back.
#[test]
fn a_device_token_alone_cannot_destroy_the_backup() {
    use backup_api::client::{BackupClient, BearerToken};
    let work = tempfile::tempdir().unwrap();
    let a = guardian(work.path().join("server-a"), &[]);
    let b = guardian(work.path().join("server-b"), &[]);
    let servers = [a.url(), b.url()];
    let phone = work.path().join("phone");
    let setup = phone_with_backup(&phone, work.path(), &servers);
    ok(vault(
        &phone,
        "device passphrase",
        &["msg", "add", "--conversation", "family", "--sender", "bo", "--body", "second"],
        &[],
        "",
    ));
    // The photo is deleted on the phone: after the next run no snapshot holds it, and the
    // owner's prune below has its object to delete.
    let media = json(run(&phone, &["--json", "media", "list"], &[]));
    let photo = media["media"][0]["id"].as_str().unwrap().to_owned();
    ok(vault(&phone, "device passphrase", &["media", "rm", &photo], &[], ""));
    assert_eq!(json(run(&phone, &["--json", "backup", "run"], &[]))["generation"], 2);
    let before = stored_objects(&a.data);

    let client = BackupClient::new(&servers[0]).unwrap();
    let session = client.login(ACCOUNT, PASSWORD.as_bytes()).unwrap().token;
    let (_, stolen): (String, BearerToken) = client.enrol_device(&session, "stolen").unwrap();
    drop(session);
    for object in client.list_objects(&stolen, None, None).unwrap().objects {
        let refused = client.delete_object(&stolen, &object.id).unwrap_err();
        assert_eq!(refused.code(), Some(backup_api::ErrorCode::Forbidden), "{refused}");
    }
    let (_, etag) = client.get_head(&stolen).unwrap().unwrap();
    let rewound = client.put_head(&stolen, b"an older head", 1, Some(&etag)).unwrap_err();
    assert_eq!(rewound.code(), Some(backup_api::ErrorCode::GenerationRegressed), "{rewound}");
    assert!(rewound.to_string().contains("may not move it back"), "{rewound}");
    assert_eq!(stored_objects(&a.data), before, "nothing was deleted");
    // The phone itself (its token) cannot prune without the password.
    let out = vault(&phone, "device passphrase", &["backup", "prune", "--keep", "1"], &[], "");
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stored_objects(&a.data), before);

    let pw = password(PASSWORD);
    let env = with_password(&pw);
    let tablet = work.path().join("tablet");
    let code = setup["recovery_code"].as_str().unwrap();
    let restored = json(run(&tablet, &restore_args(&servers, Some(code), &[]), &env));
    assert_eq!(restored["generation"], 2);
    assert_eq!(messages(&tablet), messages(&phone));

    // The owner's prune (with the password) deletes at both holders; the deleted objects are kept
    // and put back on request.
    let pruned = json(run(&phone, &["--json", "backup", "prune", "--keep", "1"], &env));
    assert_eq!(pruned["rewritten"], true, "{pruned}");
    let after_prune = stored_objects(&a.data);
    assert!(before.iter().any(|name| !after_prune.contains(name)), "the prune deleted something: {after_prune:?}");
    let deleted = json(run(&phone, &["--json", "backup", "deleted"], &env));
    let kept = deleted["objects"].as_array().unwrap();
    assert!(!kept.is_empty(), "{deleted}");
    assert!(kept.iter().any(|o| o["server"] == servers[0]) && kept.iter().any(|o| o["server"] == servers[1]));
    let restored = json(run(&phone, &["--json", "backup", "deleted", "--restore"], &env));
    assert_eq!(restored["restored"].as_u64().unwrap() as usize, kept.len(), "{restored}");
    let now = stored_objects(&a.data);
    for name in &before {
        assert!(now.contains(name), "{name} is back");
    }
}

/// The data server dies and its store is lost after a backup: a new device restores from the
/// mirror (the second guardian); a fresh, empty server takes the data server's place, the phone
/// sets up again and backs up, and the new data server is repaired from the mirror: both fully
/// hold the newest generation.
#[test]
fn a_lost_data_server_is_restored_from_the_mirror_and_repaired() {
    let work = tempfile::tempdir().unwrap();
    let mut a = guardian(work.path().join("server-a"), &[]);
    let b = guardian(work.path().join("server-b"), &[]);
    let c = guardian(work.path().join("server-c"), &[]);
    let servers = [a.url(), b.url(), c.url()];
    let phone = work.path().join("phone");
    phone_with_backup(&phone, work.path(), &servers);
    ok(vault(
        &phone,
        "device passphrase",
        &["msg", "add", "--conversation", "family", "--sender", "bo", "--body", "second"],
        &[],
        "",
    ));
    let second = json(run(&phone, &["--json", "backup", "run"], &[]));
    assert_eq!(second["generation"], 2);
    for holder in second["holders"].as_array().unwrap() {
        assert_eq!((holder["generation"].as_u64(), holder["missing"].as_u64()), (Some(2), Some(0)), "{second}");
    }
    assert_eq!(stored_objects(&a.data), stored_objects(&b.data), "the mirror holds every object");

    // The data server is gone with its store.
    a.stop();
    std::fs::remove_dir_all(a.data.join("objects")).unwrap();
    let pw = password(PASSWORD);
    let env = with_password(&pw);
    let tablet = work.path().join("tablet");
    let restored = json(run(&tablet, &restore_args(&servers, None, &[]), &env));
    assert_eq!(restored["generation"], 2, "{restored}");
    assert_eq!(restored["enrolled"], false);
    assert_eq!(messages(&tablet), messages(&phone));

    // A fresh, empty server in its place; the phone sets up again and backs up.
    a.restart();
    let mut args = vec!["--json", "backup", "setup", "--account", ACCOUNT];
    for s in &servers {
        args.extend(["--server", s.as_str()]);
    }
    json(run(&phone, &args, &env));
    let third = json(run(&phone, &["--json", "backup", "run"], &[]));
    assert_eq!(third["generation"], 3, "{third}");
    for holder in third["holders"].as_array().unwrap() {
        assert_eq!((holder["generation"].as_u64(), holder["missing"].as_u64()), (Some(3), Some(0)), "{third}");
    }
    let verified = run(&phone, &["backup", "verify"], &[]);
    let text = ok(verified);
    assert!(text.contains(&format!("holder {}: fully holds generation 3", servers[0])), "{text}");
    assert!(text.contains(&format!("holder {}: fully holds generation 3", servers[1])), "{text}");
    let status = ok(run(&phone, &["status"], &[]));
    assert!(status.contains("Backup copy  holder"), "{status}");
}

/// The mirror misses a run (it is down), then the client repairing it is killed after the first
/// object copied: the next run resumes, and the mirror ends up fully holding the newest
/// generation with each object once.
#[test]
fn a_client_killed_mid_mirror_resumes_without_duplicates_or_gaps() {
    let work = tempfile::tempdir().unwrap();
    let a = guardian(work.path().join("server-a"), &[]);
    let mut b = guardian(work.path().join("server-b"), &[]);
    let servers = [a.url(), b.url()];
    let phone = work.path().join("phone");
    phone_with_backup(&phone, work.path(), &servers);
    b.stop();
    let lines: String = (0..300).map(|i| format!("while the mirror was down {i}\n")).collect();
    ok(vault(
        &phone,
        "device passphrase",
        &["msg", "add", "--conversation", "family", "--sender", "bo", "--stdin"],
        &[],
        &lines,
    ));
    let missed = json(run(&phone, &["--json", "backup", "run"], &[]));
    assert_eq!(missed["generation"], 2);
    assert!(!missed["mirror_problems"].as_array().unwrap().is_empty(), "{missed}");
    b.restart();
    ok(vault(
        &phone,
        "device passphrase",
        &["msg", "add", "--conversation", "family", "--sender", "bo", "--body", "third"],
        &[],
        "",
    ));
    let killed = vault(
        &phone,
        "device passphrase",
        &["backup", "run"],
        &[("VAULT_FAILPOINT", "mirror:after-object-copied")],
        "",
    );
    assert_ne!(killed.status.code(), Some(0), "the failpoint aborted the run");
    let resumed = json(run(&phone, &["--json", "backup", "run"], &[]));
    for holder in resumed["holders"].as_array().unwrap() {
        assert_eq!(holder["missing"].as_u64(), Some(0), "{resumed}");
        assert_eq!(holder["generation"], resumed["generation"], "{resumed}");
    }
    let at_b = stored_objects(&b.data);
    let mut unique = at_b.clone();
    unique.dedup();
    assert_eq!(unique, at_b);
    for name in stored_objects(&a.data) {
        assert!(at_b.contains(&name), "{name} reached the mirror");
    }
}

/// Forward-secret backups under 2 of 3 guardians without a recovery code (each generation's token
/// split 2 of 3 across the guardians' head records): a backup killed at each step — after a
/// pack, before the manifest (its bridge written), before the data server's head, and after the
/// first guardian's head copy — leaves the previous or the new generation restorable on a new
/// device, never neither; that device takes the backup over and backs up on top of it, a
/// generation an interrupted run left behind included.
#[test]
fn a_backup_killed_at_each_step_leaves_the_previous_or_the_new_generation_restorable() {
    let work = tempfile::tempdir().unwrap();
    let a = guardian(work.path().join("server-a"), &[]);
    let b = guardian(work.path().join("server-b"), &[]);
    let c = guardian(work.path().join("server-c"), &[]);
    let servers = [a.url(), b.url(), c.url()];
    let pw = password(PASSWORD);
    let env = with_password(&pw);
    let mut device = work.path().join("phone");
    ok(run(&device, &["init"], &[]));
    let lines: String = (0..300).map(|i| format!("{CANARY}-{i} before anything\n")).collect();
    ok(vault(
        &device,
        "device passphrase",
        &["msg", "add", "--conversation", "family", "--sender", "ann", "--stdin"],
        &[],
        &lines,
    ));
    let mut args = vec!["--json", "backup", "setup", "--account", ACCOUNT, "--threshold", "2", "--no-recovery-code"];
    for s in &servers {
        args.extend(["--server", s.as_str()]);
    }
    json(run(&device, &args, &env));
    let mut generation = json(run(&device, &["--json", "backup", "run"], &[]))["generation"].as_u64().unwrap();
    assert_eq!(generation, 1);
    for (step, point) in
        ["backup:pack-uploaded", "backup:before-manifest", "backup:before-head", "recovery:head-copied"]
            .iter()
            .enumerate()
    {
        let body = format!("written at step {step}");
        ok(run(&device, &["msg", "add", "--conversation", "family", "--sender", "bo", "--body", &body], &[]));
        let killed = run(&device, &["backup", "run"], &[("VAULT_FAILPOINT", point)]);
        assert_ne!(killed.status.code(), Some(0), "{point}: the failpoint aborted the run");

        let next = work.path().join(format!("device-{step}"));
        let restored = json(run(&next, &restore_args(&servers, None, &[]), &env));
        let got = restored["generation"].as_u64().unwrap();
        let has_body = messages(&next).as_array().unwrap().iter().any(|m| m["body"] == body.as_str());
        match *point {
            // Nothing of the new generation is visible before its head: the previous one.
            "backup:pack-uploaded" | "backup:before-manifest" | "backup:before-head" => {
                assert_eq!((got, has_body), (generation, false), "{point}: {restored}");
            }
            // The data server and one guardian hold the new generation's shares: the new one.
            _ => assert_eq!((got, has_body), (generation + 1, true), "{point}: {restored}"),
        }
        // The new device took the backup over; it backs up on top of what it restored (past a
        // manifest the killed run left unpublished, whose token only the old device had).
        let run_after = json(run(&next, &["--json", "backup", "run"], &[]));
        let written = run_after["generation"].as_u64().unwrap();
        assert!(written > got, "{point}: {run_after}");
        assert_eq!(run_after["head_copies_failed"].as_array().unwrap().len(), 0, "{run_after}");
        generation = written;
        device = next;
    }
    // The last device's backup restores whole on one more.
    let last = work.path().join("last");
    let restored = json(run(&last, &restore_args(&servers, None, &[]), &env));
    assert_eq!(restored["generation"].as_u64().unwrap(), generation);
    assert_eq!(messages(&last), messages(&device));
}
