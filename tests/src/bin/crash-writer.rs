//! Test helper for the crash harness: unlocks a vault, then writes messages and imports media
//! forever, printing one acknowledgement line per committed item (`msg <n> <id>` or
//! `media <n> <id>`), until it is killed.

use std::io::Write;

use e2e_tests::crash;
use vault_core::{MediaImport, NewMessage, Passphrase, Vault};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(start)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok())) else {
        eprintln!("usage: crash-writer VAULT_DIR START");
        return std::process::ExitCode::from(2);
    };
    let passphrase = Passphrase::new(std::env::var("VAULT_PASSPHRASE").unwrap_or_default());
    let mut vault = match Vault::unlock_with_passphrase(std::path::Path::new(dir), &passphrase) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("unlock failed: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let mut out = std::io::stdout().lock();
    for n in start.. {
        let line = if crash::is_media(n) {
            let data = crash::media_content(n);
            match vault.media().import(&mut &data[..], MediaImport::default()) {
                Ok(id) => format!("media {n} {id}"),
                Err(e) => format!("error {e}"),
            }
        } else {
            let message =
                NewMessage { sent_at: n as i64, ..NewMessage::new("crash", "writer", crash::message_body(n)) };
            match vault.messages().add(&message) {
                Ok(id) => format!("msg {n} {}", id.0),
                Err(e) => format!("error {e}"),
            }
        };
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    std::process::ExitCode::SUCCESS
}
