//! `vault`: the command-line tool over `vault-core`.
//!
//! Errors are one line on stderr with a documented exit code; nothing printed on failure
//! contains a secret or a message's content.

mod backup;
mod cli;
mod commands;
mod context;
mod failure;
mod input;
mod network;
mod progress_bar;
mod recovery;
mod render;
mod tpm;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let mut out = std::io::stdout().lock();
    match commands::run(cli, &mut out) {
        Ok(()) => {
            let _ = out.flush();
            ExitCode::from(failure::exit::OK)
        }
        Err(failure) => {
            let _ = out.flush();
            eprintln!("vault: error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// The CLI turns vault-core's `aws-lc` feature on by default (the workspace depends on vault-core
/// without default features), so on a desktop target the fast AEAD backend must be the one built.
#[cfg(all(test, feature = "aws-lc", any(target_arch = "x86_64", target_arch = "aarch64")))]
#[cfg(not(any(target_os = "android", target_os = "ios")))]
mod aead_backend_tests {
    #[test]
    fn the_default_build_seals_with_aws_lc() {
        assert!(
            vault_core::bench_support::AEAD_BACKEND.starts_with("aws-lc"),
            "{}",
            vault_core::bench_support::AEAD_BACKEND
        );
    }
}
