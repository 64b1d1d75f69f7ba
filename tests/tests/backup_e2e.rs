//! The `vault` CLI backing up to a real `backup-server` process (on its local store, and on the S3
//! server the test command starts), restoring on a "new device", resuming after a crash, and
//! refusing tampered data with exit code 4.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;

use test_support::canary::assert_absent;
use test_support::cli::{json, ok, spawn_vault, vault};
use test_support::fs::find_files;
use test_support::s3::{S3Env, s3_env};
use test_support::server::{ServerProcess, start_server};

const PASSWORD: (&str, &str) = ("VAULT_BACKUP_PASSWORD", "backup password 42");

fn round_trip(server: &ServerProcess, work: &Path, account: &str) {
    let phone = work.join("phone");
    ok(vault(&phone, "old phone", &["init"], &[], ""));
    let lines: String = (0..2000).map(|i| format!("message {i} to back up\n")).collect();
    ok(vault(
        &phone,
        "old phone",
        &["msg", "add", "--conversation", "family", "--sender", "ann", "--stdin"],
        &[],
        &lines,
    ));
    let photo = work.join("photo.bin");
    std::fs::write(&photo, (0..1_500_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
    ok(vault(&phone, "old phone", &["media", "add", photo.to_str().unwrap(), "--conversation", "family"], &[], ""));
    ok(vault(
        &phone,
        "old phone",
        &["backup", "setup", "--server", &server.url, "--account", account],
        &[PASSWORD],
        "",
    ));

    // Debug builds (where fail points exist): a crash right after the first pack is uploaded (the
    // media item went up before it); nothing is visible, and the next run reuses both.
    #[cfg(debug_assertions)]
    {
        let crashed =
            vault(&phone, "old phone", &["backup", "run"], &[("VAULT_FAILPOINT", "backup:pack-uploaded")], "");
        assert!(!crashed.status.success());
        assert_eq!(
            vault(&phone, "old phone", &["backup", "list"], &[], "").status.code(),
            Some(1),
            "no snapshot is visible"
        );
    }
    let first = json(vault(&phone, "old phone", &["--json", "backup", "run"], &[], ""));
    assert_eq!(first["generation"], 1);
    #[cfg(debug_assertions)]
    {
        assert_eq!((first["media_uploaded"].as_u64(), first["media_reused"].as_u64()), (Some(0), Some(1)), "{first}");
        // Only the security events changed (this run's unlock and logins were logged), so most
        // chunks come from the crashed run's pack: the new ones are the export's chunks around
        // the new events and the tree chunks that list them (64-byte entries, id and key): 2 to 4
        // in eight runs here, 13 of 128 in one CI run. A run that reused nothing would upload
        // every chunk anew.
        let (new, reused) = (first["new_chunks"].as_u64().unwrap(), first["reused_chunks"].as_u64().unwrap());
        assert!(new * 4 <= reused, "the crashed run's pack was reused: {first}");
        assert!(first["uploaded_bytes"].as_u64().unwrap() <= 64 << 10, "nothing was uploaded twice: {first}");
    }
    #[cfg(not(debug_assertions))]
    assert_eq!(first["media_uploaded"], 1, "{first}");
    let second = json(vault(&phone, "old phone", &["--json", "backup", "run"], &[], ""));
    assert_eq!(second["generation"], 2);
    assert!(second["uploaded_bytes"].as_u64().unwrap() <= 64 << 10, "{second}");
    ok(vault(&phone, "old phone", &["backup", "verify", "--read-data"], &[], ""));
    let key = work.join("backup.key");
    ok(vault(&phone, "old phone", &["backup", "export-key", "--dangerous", key.to_str().unwrap()], &[], ""));

    // A new device: restore with the key and the account password.
    let new_phone = work.join("new-phone");
    let restore_args = [
        "backup",
        "restore",
        "--backup-key-file",
        key.to_str().unwrap(),
        "--server",
        &server.url,
        "--account",
        account,
    ];
    let restored =
        json(vault(&new_phone, "new phone", &[&["--json"][..], &restore_args[..]].concat(), &[PASSWORD], ""));
    assert_eq!((restored["generation"].as_u64(), restored["messages"].as_u64()), (Some(2), Some(2000)));
    let listing = |dir: &Path, pass: &str| {
        ok(vault(dir, pass, &["--json", "msg", "list", "--conversation", "family", "--limit", "5000"], &[], ""))
    };
    assert_eq!(listing(&phone, "old phone"), listing(&new_phone, "new phone"));
    let media = |dir: &Path, pass: &str| ok(vault(dir, pass, &["--json", "media", "list"], &[], ""));
    assert_eq!(media(&phone, "old phone"), media(&new_phone, "new phone"));
    ok(vault(&new_phone, "new phone", &["verify"], &[], ""));
    // A wrong account password is an authentication failure (exit 3).
    let wrong = vault(&work.join("x"), "p", &restore_args, &[("VAULT_BACKUP_PASSWORD", "wrong")], "");
    assert_eq!(wrong.status.code(), Some(3), "{}", String::from_utf8_lossy(&wrong.stderr));
}

#[test]
fn cli_backs_up_to_a_real_server_and_restores_on_a_new_device() {
    let work = tempfile::tempdir().unwrap();
    let server =
        start_server(&work.path().join("server"), &["--rate-limit-per-ip", "0", "--rate-limit-per-account", "0"]);
    round_trip(&server, work.path(), "alice");

    // Tamper with a stored pack: the restore fails with exit 4 and leaves no vault.
    let objects = find_files(&work.path().join("server/objects"), "pack-");
    assert!(!objects.is_empty());
    for pack in &objects {
        let mut bytes = std::fs::read(pack).unwrap();
        bytes[40] ^= 1;
        std::fs::write(pack, &bytes).unwrap();
    }
    let key = work.path().join("backup.key");
    let target = work.path().join("tampered");
    let out = vault(
        &target,
        "x",
        &[
            "backup",
            "restore",
            "--backup-key-file",
            key.to_str().unwrap(),
            "--server",
            &server.url,
            "--account",
            "alice",
        ],
        &[PASSWORD],
        "",
    );
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!target.exists());
    let verify = vault(&work.path().join("phone"), "old phone", &["backup", "verify", "--read-data"], &[], "");
    assert_eq!(verify.status.code(), Some(4));
}

/// SIGKILL at random moments of a backup of a larger vault, then a run that completes: the
/// storage never shows a partial snapshot, the final backup restores exactly, and no byte the
/// server stored holds a message, a media sample or the account name.
#[test]
fn sigkill_mid_backup_then_resume_and_a_canary_scan_of_the_server() {
    let work = tempfile::tempdir().unwrap();
    let server =
        start_server(&work.path().join("server"), &["--rate-limit-per-ip", "0", "--rate-limit-per-account", "0"]);
    let account = "canary-account-5e1f@example.org";
    let phone = work.path().join("phone");
    ok(vault(&phone, "pw", &["init"], &[], ""));
    let lines: String = (0..20_000).map(|i| format!("CANARY-MESSAGE-{i} body text\n")).collect();
    ok(vault(&phone, "pw", &["msg", "add", "--conversation", "c", "--sender", "s", "--stdin"], &[], &lines));
    for i in 0..4 {
        let media = work.path().join(format!("m{i}.bin"));
        let mut bytes: Vec<u8> = (0..6_000_000u32).map(|j| (j.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        bytes[..20].copy_from_slice(b"MEDIA-CANARY-SAMPLE!");
        std::fs::write(&media, &bytes).unwrap();
        ok(vault(&phone, "pw", &["media", "add", media.to_str().unwrap()], &[], ""));
    }
    ok(vault(&phone, "pw", &["backup", "setup", "--server", &server.url, "--account", account], &[PASSWORD], ""));
    for delay_ms in [150u64, 400, 900] {
        let mut child = spawn_vault(&phone, "pw", &["backup", "run"], &[]);
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            break; // finished before the kill
        }
    }
    let run = json(vault(&phone, "pw", &["--json", "backup", "run"], &[], ""));
    assert!(run["generation"].as_u64().unwrap() >= 1);
    let list = json(vault(&phone, "pw", &["--json", "backup", "list"], &[], ""));
    let snapshots = list["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 1, "a manifest holds the newest snapshot only: {list}");
    assert_eq!(snapshots[0]["generation"], run["generation"], "the visible snapshot is the completed run");
    ok(vault(&phone, "pw", &["backup", "verify", "--read-data"], &[], ""));
    let key = work.path().join("k");
    ok(vault(&phone, "pw", &["backup", "export-key", "--dangerous", key.to_str().unwrap()], &[], ""));
    let new_phone = work.path().join("new");
    ok(vault(
        &new_phone,
        "new",
        &[
            "backup",
            "restore",
            "--backup-key-file",
            key.to_str().unwrap(),
            "--server",
            &server.url,
            "--account",
            account,
        ],
        &[PASSWORD],
        "",
    ));
    let count = |dir: &Path, pass: &str| json(vault(dir, pass, &["--json", "status"], &[], ""))["messages"].clone();
    assert_eq!(count(&phone, "pw"), count(&new_phone, "new"));

    let needles: [(&str, &[u8]); 4] = [
        ("message canary", b"CANARY-MESSAGE-1"),
        ("media sample", b"MEDIA-CANARY-SAMPLE"),
        ("account name", account.as_bytes()),
        ("backup password", PASSWORD.1.as_bytes()),
    ];
    let scanned = assert_absent(&work.path().join("server"), &needles).bytes;
    assert!(scanned > 24_000_000, "the scan covered what the server stored ({scanned} bytes)");
}

#[test]
#[cfg_attr(not(s3_available), ignore = "needs an S3 server: run scripts/test.sh")]
fn cli_backs_up_through_a_server_on_s3() {
    let S3Env { endpoint, bucket } = s3_env();
    let work = tempfile::tempdir().unwrap();
    let store = format!("s3://{bucket}/{}", test_support::unique("e2e"));
    let setup = work.path().join("setup.key");
    // A local server makes the setup file; the S3 server reuses it.
    drop(start_server(&work.path().join("setup-maker"), &["--setup-file", setup.to_str().unwrap()]));
    let server = start_server(
        &work.path().join("server"),
        &[
            "--store",
            &store,
            "--s3-endpoint",
            &endpoint,
            "--s3-allow-http",
            "--setup-file",
            setup.to_str().unwrap(),
            "--rate-limit-per-ip",
            "0",
            "--rate-limit-per-account",
            "0",
        ],
    );
    round_trip(&server, work.path(), "s3-user");
    // The restore read the photo (1.5 MB, one ranged read) straight from the store, through a
    // presigned URL the server handed out (ADR 0019).
    assert!(metric(&server, "backup_direct_downloads_total") >= 1);

    // An export over 1 MiB and a 3 MiB video: the pack and the media object go up straight to the
    // store, and the server receives only the small objects.
    let phone = work.path().join("big-phone");
    ok(vault(&phone, "big phone", &["init"], &[], ""));
    let lines: String = (0..40_000).map(|i| format!("message {i} with some text to fill the export\n")).collect();
    let add = ["msg", "add", "--conversation", "chat", "--sender", "ann", "--stdin"];
    ok(vault(&phone, "big phone", &add, &[], &lines));
    let video = work.path().join("video.bin");
    let video_bytes: Vec<u8> = (0..3u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&video, &video_bytes).unwrap();
    ok(vault(&phone, "big phone", &["media", "add", video.to_str().unwrap()], &[], ""));
    let setup = ["backup", "setup", "--server", &server.url, "--account", "s3-big"];
    ok(vault(&phone, "big phone", &setup, &[PASSWORD], ""));
    let (received, direct) =
        (metric(&server, "backup_object_bytes_received_total"), metric(&server, "backup_direct_uploads_total"));
    let run = json(vault(&phone, "big phone", &["--json", "backup", "run"], &[], ""));
    let uploaded = run["uploaded_bytes"].as_u64().unwrap();
    let through_server = metric(&server, "backup_object_bytes_received_total") - received;
    assert!(metric(&server, "backup_direct_uploads_total") >= direct + 2, "the pack and the video: {run}");
    assert!(uploaded > 4 << 20 && through_server * 4 < uploaded, "{through_server} of {uploaded} B through the server");
    let key = work.path().join("big.key");
    ok(vault(&phone, "big phone", &["backup", "export-key", "--dangerous", key.to_str().unwrap()], &[], ""));
    let restore = ["--json", "backup", "restore", "--backup-key-file", key.to_str().unwrap(), "--server", &server.url];
    let restored = json(vault(
        &work.path().join("big-new"),
        "new",
        &[&restore[..], &["--account", "s3-big"]].concat(),
        &[PASSWORD],
        "",
    ));
    assert_eq!(restored["messages"].as_u64(), Some(40_000));
    let listed = ok(vault(&work.path().join("big-new"), "new", &["media", "list"], &[], ""));
    let id = listed.split_whitespace().next().unwrap();
    let out = work.path().join("video.out");
    ok(vault(&work.path().join("big-new"), "new", &["media", "get", id, out.to_str().unwrap()], &[], ""));
    assert!(std::fs::read(&out).unwrap() == video_bytes, "the video came back whole");
}

/// A counter from the server's `/metrics`.
fn metric(server: &ServerProcess, name: &str) -> u64 {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}
