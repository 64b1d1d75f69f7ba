//! Registers an account on a running server, logs in, enrols a device and prints the device token
//! (for benchmarks and manual testing against a local server).
//!
//! `cargo run --release -p backup-server --example enrol_device -- http://127.0.0.1:8371 ACCOUNT`
//! reads the password from standard input.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::BufRead as _;

use backup_api::KsfParams;
use backup_api::client::BackupClient;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(account)) = (args.next(), args.next()) else {
        return Err("usage: enrol_device URL ACCOUNT (password on stdin)".into());
    };
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    let password = password.trim_end_matches('\n');
    let client = BackupClient::new(&url)?;
    client.register(&account, password.as_bytes(), KsfParams::recommended())?;
    let session = client.login(&account, password.as_bytes())?;
    let (_, device) = client.enrol_device(&session.token, "benchmark")?;
    println!("{}", device.expose());
    Ok(())
}
