//! Kill -9 at random moments: a real process writes messages and imports media, acknowledging
//! each committed item; it is killed with SIGKILL at a random time, again and again (bounded in
//! count and time). After every kill the vault must open, every acknowledged item must be there
//! and intact, and nothing half-written may be visible.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::crash;
use vault_core::{CreateOptions, KdfParams, MediaId, MessageId, Passphrase, Vault};

const PASS: &str = "crash-harness-pass";
const MAX_ITERATIONS: u64 = 300;
const TIME_BUDGET: Duration = Duration::from_secs(60);

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_at_random_points() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let kdf = KdfParams { memory_kib: KdfParams::MIN_MEMORY_KIB, iterations: 1, parallelism: 1 };
    Vault::create(&dir, &Passphrase::new(PASS.into()), CreateOptions { kdf, wrapper: None }).unwrap().lock();

    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut messages: Vec<(u64, MessageId)> = Vec::new();
    let mut media: Vec<(u64, MediaId)> = Vec::new();
    let started = Instant::now();
    let mut iterations = 0;
    while iterations < MAX_ITERATIONS && started.elapsed() < TIME_BUDGET {
        let start = iterations * 1_000_000;
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
            .arg(&dir)
            .arg(start.to_string())
            .env("VAULT_PASSPHRASE", PASS)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(2 + rng.next() % 120));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut output = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_to_string(&mut output).unwrap();
        let (new_messages, new_media) = parse_acks(&output);

        let mut vault = Vault::unlock_with_passphrase(&dir, &Passphrase::new(PASS.into()))
            .unwrap_or_else(|e| panic!("iteration {iterations}: the vault must open after a kill: {e}"));
        for (n, id) in &new_messages {
            let m = vault.messages().get(*id).unwrap().unwrap_or_else(|| panic!("acknowledged message {n} lost"));
            assert_eq!(m.body, crash::message_body(*n), "message {n} intact");
        }
        for (n, id) in &new_media {
            let mut data = Vec::new();
            vault.media().open(id).unwrap().read_to_end(&mut data).unwrap();
            assert!(data == crash::media_content(*n), "media {n} intact");
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.join(vault_core::MEDIA_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| MediaId::parse(name).is_err())
            .collect();
        assert!(leftovers.is_empty(), "half-written files visible after unlock: {leftovers:?}");
        messages.extend(new_messages);
        media.extend(new_media);
        if iterations % 25 == 0 {
            assert!(vault.verify().unwrap().is_ok(), "iteration {iterations}: verify");
        }
        iterations += 1;
    }
    let mut vault = Vault::unlock_with_passphrase(&dir, &Passphrase::new(PASS.into())).unwrap();
    assert!(vault.verify().unwrap().is_ok());
    for (n, id) in &messages {
        assert_eq!(vault.messages().get(*id).unwrap().map(|m| m.body), Some(crash::message_body(*n)));
    }
    assert_eq!(
        vault.media().list().unwrap().iter().filter(|m| media.iter().any(|(_, id)| *id == m.id)).count(),
        media.len()
    );
    println!(
        "crash harness: {iterations} SIGKILLs in {:.1} s; {} acknowledged messages and {} acknowledged media items all intact",
        started.elapsed().as_secs_f64(),
        messages.len(),
        media.len()
    );
    assert!(iterations >= 50, "too few iterations ran ({iterations}) to mean anything");
    assert!(!messages.is_empty() && !media.is_empty(), "the writer made progress");
}

/// Acknowledged items: (sequence number, id).
type Acks<T> = Vec<(u64, T)>;

fn parse_acks(output: &str) -> (Acks<MessageId>, Acks<MediaId>) {
    let mut messages = Vec::new();
    let mut media = Vec::new();
    for line in output.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["msg", n, id] => messages.push((n.parse().unwrap(), MessageId(id.parse().unwrap()))),
            ["media", n, id] => media.push((n.parse().unwrap(), MediaId::parse(id).unwrap())),
            _ => {} // a line cut by the kill, or an error line
        }
    }
    (messages, media)
}
