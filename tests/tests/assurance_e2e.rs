//! The assurance suite (`docs/THREAT_MODEL.md`): one lifecycle with real `backup-server`
//! processes and the `vault` CLI, attacked and faulted along the way.
//!
//! 1. Lifecycle: device A creates a vault with canaries, sets up recovery with two servers and a
//!    recovery code, backs up, adds more, backs up again; A is destroyed; device B restores with
//!    the password, device C with one server and the code; all three hold the same content.
//! 2. Adversary matrix: every object kind the servers store is bit-flipped, truncated, deleted,
//!    swapped and replayed in turn; each restore and verify fails with the documented exit code and
//!    leaves nothing behind. One server hides the newest snapshot. A second account cannot read,
//!    list, overwrite or delete the first's objects. Wrong passwords lock the escrow, also across a
//!    server restart.
//! 3. Faults: kill -9 of the data server during backups and of the client during backups and
//!    restores, in loops bounded in time; afterwards the next backup and restore succeed and
//!    verify.
//! 4. Canary sweep: every byte in every server directory and every vault directory is scanned for
//!    message canaries, media samples, the account name, the passwords and the recovery code.
//!
//! A summary (cases run, faults injected, bytes scanned) is written to
//! `target/assurance-summary.txt`; `scripts/test.sh` prints it at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use backup_api::client::BackupClient;
use test_support::canary::assert_absent;
use test_support::cli::{json, ok, spawn_vault, vault};
use test_support::fs::{account_file, copy_dir, find_files};
use test_support::server::{RestartableServer, run_server};
use test_support::workspace_binary;

const ACCOUNT: &str = "assurance-alice-canary@example.org";
const SECOND_ACCOUNT: &str = "assurance-bob@example.org";
const PASSWORD: &str = "assurance backup password 1234";
const PHONE_PASSPHRASE: &str = "phone passphrase canary";
const NEW_PASSPHRASE: &str = "new device passphrase canary";
const MESSAGE_CANARY: &str = "ASSURANCE-MESSAGE-CANARY";
const MEDIA_CANARY: &[u8] = b"ASSURANCE-MEDIA-PLAINTEXT-SAMPLE";
const LOGIN_LIMIT: usize = 5;

#[derive(Default)]
struct Summary {
    lines: Vec<String>,
    adversary_cases: usize,
    faults: usize,
    restores: usize,
    scanned_bytes: u64,
    scanned_files: usize,
}

impl Summary {
    fn note(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }
}

/// A server with a fixed address and data directory, restartable and killable, with login rate
/// limits off and the login-attempt limit.
fn guardian(data: PathBuf) -> RestartableServer {
    let limit = LOGIN_LIMIT.to_string();
    RestartableServer::start(
        data,
        &["--rate-limit-per-ip", "0", "--rate-limit-per-account", "0", "--login-attempt-limit", &limit],
    )
}

fn run(dir: &Path, passphrase: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
    vault(dir, passphrase, args, envs, "")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn restore_args<'a>(servers: &'a [String], code: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec!["--json", "restore", "--account", ACCOUNT];
    for s in servers {
        args.extend(["--server", s.as_str()]);
    }
    if let Some(code) = code {
        // The code goes through VAULT_RECOVERY_CODE, never argv.
        args.extend([test_support::cli::RECOVERY_CODE, code]);
    }
    args
}

/// Everything a device shows of its content, for comparing devices.
fn content(dir: &Path, passphrase: &str) -> (serde_json::Value, serde_json::Value) {
    let messages =
        json(run(dir, passphrase, &["--json", "msg", "list", "--conversation", "family", "--limit", "10000"], &[]));
    let media = json(run(dir, passphrase, &["--json", "media", "list"], &[]));
    (messages["messages"].clone(), media)
}

fn media_plaintext(dir: &Path, passphrase: &str, work: &Path) -> Vec<Vec<u8>> {
    let media = json(run(dir, passphrase, &["--json", "media", "list"], &[]));
    let mut out = Vec::new();
    for item in media["media"].as_array().unwrap() {
        let id = item["id"].as_str().unwrap();
        let file = work.join(format!("out-{id}"));
        let _ = std::fs::remove_file(&file);
        ok(run(dir, passphrase, &["media", "get", id, file.to_str().unwrap()], &[]));
        out.push(std::fs::read(&file).unwrap());
        std::fs::remove_file(&file).unwrap();
    }
    out.sort();
    out
}

fn objects_dir(server: &RestartableServer, account_marker: &str) -> PathBuf {
    // The account directory that holds objects named like `marker-…`.
    let file = find_files(&server.data, account_marker)
        .into_iter()
        .find(|f| f.parent().unwrap().file_name().unwrap() == "objects")
        .unwrap_or_else(|| panic!("no {account_marker} object at {}", server.data.display()));
    file.parent().unwrap().to_owned()
}

#[test]
fn the_whole_lifecycle_under_attack() {
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut summary = Summary::default();
    let mut a = guardian(w.join("server-a"));
    let mut b = guardian(w.join("server-b"));
    let servers = [a.url(), b.url()];
    let env = [("VAULT_BACKUP_PASSWORD", PASSWORD)];

    // ---- 1. Lifecycle ------------------------------------------------------------------------
    let phone = w.join("device-a");
    ok(run(&phone, PHONE_PASSPHRASE, &["init"], &[]));
    let lines: String = (0..3000).map(|i| format!("{MESSAGE_CANARY}-{i} meet at the usual place\n")).collect();
    ok(vault(
        &phone,
        PHONE_PASSPHRASE,
        &["msg", "add", "--conversation", "family", "--sender", "ann", "--stdin"],
        &[],
        &lines,
    ));
    for (i, len) in [0usize, 65_536, 4_000_000].into_iter().enumerate() {
        let mut bytes: Vec<u8> = (0..len as u32).map(|j| (j.wrapping_mul(2_654_435_761) >> (7 + i)) as u8).collect();
        if len >= MEDIA_CANARY.len() {
            bytes[..MEDIA_CANARY.len()].copy_from_slice(MEDIA_CANARY);
        }
        let file = w.join(format!("media-{i}.bin"));
        std::fs::write(&file, &bytes).unwrap();
        ok(run(&phone, PHONE_PASSPHRASE, &["media", "add", file.to_str().unwrap(), "--conversation", "family"], &[]));
        std::fs::remove_file(&file).unwrap();
    }
    let mut setup_args = vec!["--json", "backup", "setup", "--account", ACCOUNT];
    for s in &servers {
        setup_args.extend(["--server", s.as_str()]);
    }
    let setup = json(run(&phone, PHONE_PASSPHRASE, &setup_args, &env));
    let code = setup["recovery_code"].as_str().unwrap().to_owned();
    assert_eq!(json(run(&phone, PHONE_PASSPHRASE, &["--json", "backup", "run"], &[]))["generation"], 1);
    // Generation 1 of the data server, kept to replay it later.
    let generation_one = w.join("server-a-generation-1");
    a.stop();
    copy_dir(&a.data, &generation_one);
    a.restart();
    ok(run(
        &phone,
        PHONE_PASSPHRASE,
        &["msg", "add", "--conversation", "family", "--sender", "bo", "--body", &format!("{MESSAGE_CANARY}-late")],
        &[],
    ));
    let incremental = json(run(&phone, PHONE_PASSPHRASE, &["--json", "backup", "run"], &[]));
    assert_eq!(incremental["generation"], 2);
    assert_eq!(incremental["media_uploaded"], 0, "media are not uploaded again");
    let original = content(&phone, PHONE_PASSPHRASE);
    let original_media = media_plaintext(&phone, PHONE_PASSPHRASE, w);
    let safety = setup["safety_number"].clone();
    std::fs::remove_dir_all(&phone).unwrap();
    summary.note("lifecycle: device A set up 2 of {2 servers, recovery code}, 2 backups, then destroyed");

    // Device C is given one server and the code: the escrow's guardian list reaches B too, so C
    // is enrolled, B attests the head, and C takes the backup over. Device B restores after it
    // and is the writer from then on.
    let device_c = w.join("device-c");
    let restored = json(run(&device_c, NEW_PASSPHRASE, &restore_args(&servers[..1], Some(&code)), &env));
    assert_eq!(restored["recovery_code_used"], true);
    assert_eq!(restored["enrolled"], true);
    assert_eq!(restored["freshness"]["by"], serde_json::json!([servers[1].clone()]));
    let device_b = w.join("device-b");
    let restored = json(run(&device_b, NEW_PASSPHRASE, &restore_args(&servers, None), &env));
    assert_eq!((restored["generation"].as_u64(), restored["enrolled"].as_bool()), (Some(2), Some(true)));
    summary.restores += 2;
    for device in [&device_b, &device_c] {
        assert_eq!(content(device, NEW_PASSPHRASE), original, "{}", device.display());
        assert_eq!(media_plaintext(device, NEW_PASSPHRASE, w), original_media);
    }
    assert_eq!(json(run(&device_b, NEW_PASSPHRASE, &["--json", "status"], &[]))["recovery"]["safety_number"], safety);
    summary.note("lifecycle: device B (password, both servers) and device C (one server + code) equal device A");

    // ---- 2. Adversary matrix ------------------------------------------------------------------
    let attempt = |summary: &mut Summary, label: &str, servers: &[String], code: Option<&str>, expected: i32| {
        let target = w.join("attacked-restore");
        let out = run(&target, NEW_PASSPHRASE, &restore_args(servers, code), &env);
        assert_eq!(out.status.code(), Some(expected), "{label}: {}", stderr(&out));
        assert!(!target.exists(), "{label}: a failed restore left a vault");
        let leftovers = std::fs::read_dir(w).unwrap().filter_map(|e| e.ok()).any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.contains("attacked-restore") && name.contains("restoring") && expected == 4
        });
        assert!(!leftovers, "{label}: damaged data is not kept for resuming");
        summary.adversary_cases += 1;
    };
    let verify_fails = |summary: &mut Summary, label: &str| {
        let out = run(&device_b, NEW_PASSPHRASE, &["backup", "verify", "--read-data"], &[]);
        assert_eq!(out.status.code(), Some(4), "verify, {label}: {}", stderr(&out));
        summary.adversary_cases += 1;
    };
    let objects = objects_dir(&a, "pack-");
    let mut kinds: Vec<(&str, Vec<PathBuf>)> = Vec::new();
    for prefix in ["pack-", "index-", "manifest-", "media-"] {
        let mut files = find_files(&objects, prefix);
        files.sort();
        assert!(!files.is_empty(), "{prefix}");
        kinds.push((prefix, files));
    }
    for (kind, files) in &kinds {
        // The media item large enough to matter, and the newest manifest, are the victims.
        let victim = match *kind {
            "media-" => files.iter().max_by_key(|f| std::fs::metadata(f).unwrap().len()).unwrap().clone(),
            _ => files.last().unwrap().clone(),
        };
        let original = std::fs::read(&victim).unwrap();
        let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
            (
                "bit flip",
                Some({
                    let mut v = original.clone();
                    let at = v.len() / 2;
                    v[at] ^= 0x04;
                    v
                }),
            ),
            // Into the data: packs and media objects end in random padding, which no reader uses.
            ("truncation", Some(original[..original.len() / 2].to_vec())),
            ("deletion", None),
        ];
        for (case, bytes) in cases {
            match &bytes {
                Some(b) => std::fs::write(&victim, b).unwrap(),
                None => std::fs::remove_file(&victim).unwrap(),
            }
            let label = format!("{kind} {case}");
            if case == "deletion" {
                // The mirror (server B) holds a copy of every object: the restore reads the lost
                // one from it and succeeds. The restore takes the backup over; put the data
                // server's head back so device B stays the writer for the rest.
                let heads = [account_file(&a.data, "head"), account_file(&b.data, "head")];
                let writer_b = heads.each_ref().map(|h| std::fs::read(h).unwrap());
                let target = w.join("served-by-the-mirror");
                let restored = json(run(&target, NEW_PASSPHRASE, &restore_args(&servers, None), &env));
                for (head, bytes) in heads.iter().zip(&writer_b) {
                    std::fs::write(head, bytes).unwrap();
                }
                assert_eq!(restored["generation"], 2, "{label}");
                assert_eq!(content(&target, NEW_PASSPHRASE), content(&device_b, NEW_PASSPHRASE), "{label}");
                std::fs::remove_dir_all(&target).unwrap();
                summary.adversary_cases += 1;
            } else {
                attempt(&mut summary, &label, &servers, None, 4);
            }
            if *kind != "media-" || case != "deletion" {
                verify_fails(&mut summary, &label);
            }
            std::fs::write(&victim, &original).unwrap();
        }
        // Swap: another object of the kind under the victim's name (or, for a kind with one
        // object, an object of another kind).
        let other = files.iter().find(|f| **f != victim).cloned().unwrap_or_else(|| kinds[0].1[0].clone());
        std::fs::copy(&other, &victim).unwrap();
        attempt(&mut summary, &format!("{kind} swapped"), &servers, None, 4);
        std::fs::write(&victim, &original).unwrap();
    }
    // Replay: manifest 2 replaced by manifest 1's bytes.
    let manifests = &kinds.iter().find(|(k, _)| *k == "manifest-").unwrap().1;
    let newest = std::fs::read(manifests.last().unwrap()).unwrap();
    std::fs::copy(&manifests[0], manifests.last().unwrap()).unwrap();
    attempt(&mut summary, "manifest replayed", &servers, None, 4);
    std::fs::write(manifests.last().unwrap(), &newest).unwrap();
    // Head records and escrow records, on the data server and on the guardian.
    let mut accepted_unverified = 0;
    for (server, kind) in [(&a, "head"), (&b, "head"), (&a, "escrow"), (&b, "escrow")] {
        // Alice's (the second account does not exist yet): exactly one.
        let file = &account_file(&server.data, kind);
        let original = std::fs::read(file).unwrap();
        let mut flipped = original.clone();
        flipped[original.len() / 2] ^= 0x10;
        // Escrow: restore through that server and the code, so its share is needed.
        let through: Vec<String> = if kind == "escrow" { vec![server.url()] } else { servers.to_vec() };
        let code_if_needed = (kind == "escrow").then_some(code.as_str());
        for (case, bytes) in [
            ("bit flip", Some(flipped)),
            ("truncation", Some(original[..original.len() - 3].to_vec())),
            ("deletion", None),
        ] {
            match &bytes {
                Some(b) => std::fs::write(file, b).unwrap(),
                None => std::fs::remove_file(file).unwrap(),
            }
            let label = format!("{kind} at {} {case}", if std::ptr::eq(server, &a) { "A" } else { "B" });
            // A head copy at the guardian that is deleted, or does not authenticate, loses the only
            // attestation of the data server's head: the restore is refused (exit 4, nothing left)
            // unless an unverified restore is accepted explicitly, and then it says so.
            let expected = if kind == "head" && !std::ptr::eq(server, &a) { 0 } else { 4 };
            if expected == 0 {
                let target = w.join("guardian-head-deleted");
                let refused = run(&target, NEW_PASSPHRASE, &restore_args(&through, code_if_needed), &env);
                assert_eq!(refused.status.code(), Some(4), "{label}: {}", stderr(&refused));
                assert!(stderr(&refused).contains("--accept-unverified-freshness"), "{label}: {}", stderr(&refused));
                assert!(!target.exists(), "{label}: a refused restore left a vault");
                // The restore takes the backup over (its head names the new device); put the
                // data server's head back so device B stays the writer for the rest.
                let data_head = account_file(&a.data, "head");
                let writer_b = std::fs::read(&data_head).unwrap();
                let mut accepting = restore_args(&through, code_if_needed);
                accepting.push("--accept-unverified-freshness");
                let restored = json(run(&target, NEW_PASSPHRASE, &accepting, &env));
                std::fs::write(&data_head, &writer_b).unwrap();
                assert_eq!(restored["freshness"]["state"], "unverified", "{label}");
                let failed = restored["servers_failed"].to_string();
                if case == "deletion" {
                    assert_eq!(restored["servers_failed"].as_array().unwrap().len(), 0, "{label}: {failed}");
                } else {
                    assert!(failed.contains(&b.url()) && failed.contains("does not authenticate"), "{label}: {failed}");
                }
                std::fs::remove_dir_all(&target).unwrap();
                summary.adversary_cases += 2;
                summary.restores += 1;
                accepted_unverified += 1;
            } else {
                attempt(&mut summary, &label, &through, code_if_needed, expected);
            }
            std::fs::write(file, &original).unwrap();
        }
    }
    summary.note(format!(
        "adversary: every stored object kind (pack, index, manifest, media, head at A and B, escrow at A and B) \
         bit-flipped, truncated, deleted, swapped or replayed: {} cases; {} refused with exit 4 leaving nothing, \
         {accepted_unverified} restored only when an unverified restore was accepted (a deleted or damaged head copy at \
         the guardian drops the only attestation: refused by default, restored and marked unverified with \
         --accept-unverified-freshness, the damaged copy named)",
        summary.adversary_cases,
        summary.adversary_cases - accepted_unverified
    ));

    // The data server serves its generation-1 head record again (hiding generation 2); B's head
    // copy says 2, and device B remembers 2.
    let head_now = account_file(&a.data, "head");
    let head_then = account_file(&generation_one, "head");
    let current_head = std::fs::read(&head_now).unwrap();
    std::fs::copy(&head_then, &head_now).unwrap();
    let hidden = run(&w.join("hidden"), NEW_PASSPHRASE, &restore_args(&servers, None), &env);
    assert_eq!(hidden.status.code(), Some(4), "{}", stderr(&hidden));
    assert!(stderr(&hidden).contains("hides newer snapshots"), "{}", stderr(&hidden));
    let rolled = run(&device_b, NEW_PASSPHRASE, &["backup", "run"], &[]);
    assert_eq!(rolled.status.code(), Some(4), "the restored device remembers generation 2: {}", stderr(&rolled));
    std::fs::write(&head_now, &current_head).unwrap();
    summary.adversary_cases += 2;
    summary.note("adversary: the data server hiding the newest snapshot is detected by a new device and by an old one");

    // A second account on the same server.
    let client = BackupClient::new(&a.url()).unwrap();
    client.register(SECOND_ACCOUNT, b"bob's password", backup_api::KsfParams::recommended()).unwrap();
    let bob = client.login(SECOND_ACCOUNT, b"bob's password").unwrap();
    let alice_objects: Vec<String> =
        find_files(&objects, "").iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    let listed = client.list_objects(&bob.token, None, None).unwrap();
    assert!(listed.objects.is_empty(), "bob lists none of alice's objects");
    for name in alice_objects.iter().take(3) {
        let read = client.get_object(&bob.token, name, 1 << 30);
        assert_eq!(read.unwrap_err().code(), Some(backup_api::ErrorCode::NotFound), "{name}");
        let before = std::fs::read(objects.join(name)).unwrap();
        client.put_object(&bob.token, name, b"overwrite attempt").unwrap(); // lands in bob's own space
        let _ = client.delete_object(&bob.token, name);
        assert_eq!(std::fs::read(objects.join(name)).unwrap(), before, "alice's {name} is untouched");
        summary.adversary_cases += 3;
    }
    assert!(client.get_escrow(&bob.token).unwrap().is_none(), "bob sees no escrow but his own (none)");
    summary.note("adversary: a second account cannot read, list, overwrite or delete the first's objects or escrow");

    // Brute force: the limit of wrong passwords locks the escrow, also after a restart.
    let guesser = w.join("guesser");
    for i in 0..LOGIN_LIMIT {
        let out = run(
            &guesser,
            NEW_PASSPHRASE,
            &restore_args(&servers[1..], Some(&code)),
            &[("VAULT_BACKUP_PASSWORD", "guess")],
        );
        assert_eq!(out.status.code(), Some(3), "guess {i}: {}", stderr(&out));
    }
    b.stop();
    b.restart();
    let mut key_only = restore_args(&servers[1..], Some(&code));
    key_only.push("--key-only");
    let locked = run(&guesser, NEW_PASSPHRASE, &key_only, &env);
    assert_eq!(locked.status.code(), Some(3), "still locked after a restart: {}", stderr(&locked));
    b.stop();
    let args = ["--data-dir", b.data.to_str().unwrap(), "unlock-account", "--account", ACCOUNT];
    let unlock = run_server(&workspace_binary("backup-server"), &args, &[]);
    assert!(unlock.status.success(), "{}", stderr(&unlock));
    b.restart();
    ok(run(&guesser, NEW_PASSPHRASE, &key_only, &env));
    summary.adversary_cases += LOGIN_LIMIT + 1;
    summary.note(format!("adversary: {LOGIN_LIMIT} wrong passwords lock the escrow, across a server restart, until the operator unlocks it"));

    // ---- 3. Faults ----------------------------------------------------------------------------
    let deadline = Instant::now() + Duration::from_secs(60);
    // The data server killed during backups of new media.
    for round in 0..3u32 {
        if Instant::now() > deadline {
            break;
        }
        let file = w.join("fault-media.bin");
        let bytes: Vec<u8> =
            (0..6_000_000u32).map(|j| (j.wrapping_mul(40_503).wrapping_add(round) >> 5) as u8).collect();
        std::fs::write(&file, &bytes).unwrap();
        ok(run(&device_b, NEW_PASSPHRASE, &["media", "add", file.to_str().unwrap()], &[]));
        let mut child = spawn_vault(&device_b, NEW_PASSPHRASE, &["backup", "run"], &[]);
        std::thread::sleep(Duration::from_millis(250 + 150 * u64::from(round)));
        a.stop();
        let _ = child.wait();
        a.restart();
        summary.faults += 1;
        ok(run(&device_b, NEW_PASSPHRASE, &["backup", "run"], &[]));
    }
    // The client killed during backups.
    for round in 0..3u32 {
        if Instant::now() > deadline {
            break;
        }
        ok(run(
            &device_b,
            NEW_PASSPHRASE,
            &[
                "msg",
                "add",
                "--conversation",
                "family",
                "--sender",
                "k",
                "--body",
                &format!("{MESSAGE_CANARY}-fault-{round}"),
            ],
            &[],
        ));
        let file = w.join("fault-media.bin");
        let bytes: Vec<u8> =
            (0..5_000_000u32).map(|j| (j.wrapping_mul(69_069).wrapping_add(round + 7) >> 3) as u8).collect();
        std::fs::write(&file, &bytes).unwrap();
        ok(run(&device_b, NEW_PASSPHRASE, &["media", "add", file.to_str().unwrap()], &[]));
        let mut child = spawn_vault(&device_b, NEW_PASSPHRASE, &["backup", "run"], &[]);
        std::thread::sleep(Duration::from_millis(200 + 200 * u64::from(round)));
        let _ = child.kill();
        let _ = child.wait();
        summary.faults += 1;
    }
    let _ = std::fs::remove_file(w.join("fault-media.bin"));
    let last = json(run(&device_b, NEW_PASSPHRASE, &["--json", "backup", "run"], &[]));
    let list = json(run(&device_b, NEW_PASSPHRASE, &["--json", "backup", "list"], &[]));
    assert_eq!(
        list["snapshots"].as_array().unwrap().last().unwrap()["generation"],
        last["generation"],
        "every visible snapshot is complete"
    );
    ok(run(&device_b, NEW_PASSPHRASE, &["backup", "verify", "--read-data"], &[]));
    // The client killed during restores; the next restore resumes and completes.
    let device_d = w.join("device-d");
    for round in 0..3u32 {
        if Instant::now() > deadline || device_d.exists() {
            break;
        }
        let mut child = spawn_vault(&device_d, NEW_PASSPHRASE, &restore_args(&servers, None), &env);
        std::thread::sleep(Duration::from_millis(600 + 300 * u64::from(round)));
        let _ = child.kill();
        let _ = child.wait();
        summary.faults += 1;
        // Killed before the rename: nothing at the target; after it: a whole vault.
    }
    if !device_d.exists() {
        ok(run(&device_d, NEW_PASSPHRASE, &restore_args(&servers, None), &env));
    }
    summary.restores += 1;
    assert_eq!(content(&device_d, NEW_PASSPHRASE), content(&device_b, NEW_PASSPHRASE));
    ok(run(&device_d, NEW_PASSPHRASE, &["verify"], &[]));
    summary.note(format!(
        "faults: {} kill -9 (data server during backups, client during backups and restores); afterwards backup, \
         verify --read-data and a resumed restore succeed, and every visible snapshot is complete",
        summary.faults
    ));

    // ---- 4. Canary sweep ----------------------------------------------------------------------
    let code_compact: String = code.chars().filter(|c| *c != '-').collect();
    let needles: [(&str, &[u8]); 9] = [
        ("message canary", MESSAGE_CANARY.as_bytes()),
        ("media sample", MEDIA_CANARY),
        ("account name", ACCOUNT.as_bytes()),
        ("second account name", SECOND_ACCOUNT.as_bytes()),
        ("backup password", PASSWORD.as_bytes()),
        ("vault passphrase", NEW_PASSPHRASE.as_bytes()),
        ("old vault passphrase", PHONE_PASSPHRASE.as_bytes()),
        ("recovery code", code.as_bytes()),
        ("recovery code (compact)", code_compact.as_bytes()),
    ];
    // Everything under the work directory: both servers, the saved server states, every vault,
    // and whatever an interrupted restore or backup left.
    let scanned = assert_absent(w, &needles);
    summary.scanned_bytes = scanned.bytes;
    summary.scanned_files = scanned.files;
    assert!(summary.scanned_bytes > 30_000_000, "{}", summary.scanned_bytes);
    summary.note(format!(
        "canary sweep: {} files, {} bytes (servers, saved server states, vaults, leftovers); none holds a message, \
         a media sample, an account name, a password, a passphrase or the recovery code",
        summary.scanned_files, summary.scanned_bytes
    ));

    let report = format!(
        "assurance suite: {} adversary cases, {} faults injected, {} successful restores, {:.0} s\n{}\n",
        summary.adversary_cases,
        summary.faults,
        summary.restores,
        started.elapsed().as_secs_f64(),
        summary.lines.iter().map(|l| format!("  - {l}")).collect::<Vec<_>>().join("\n")
    );
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/assurance-summary.txt");
    std::fs::write(out, &report).unwrap();
    eprintln!("{report}");
    drop((a, b));
}
