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
