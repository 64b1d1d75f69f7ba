//! Where secrets and bulk input come from: environment variables or standard input. Secrets are
//! read into zeroized buffers and never echoed.

use std::io::{BufRead, StdinLock};

use vault_core::Passphrase;
use zeroize::Zeroizing;

use crate::failure::Failure;

/// Reads the passphrase(s) and, for bulk commands, message lines from one stdin stream.
pub struct Input {
    passphrase_stdin: bool,
    stdin: StdinLock<'static>,
}

impl Input {
    /// Input per the `--passphrase-stdin` flag.
    pub fn new(passphrase_stdin: bool) -> Self {
        Self { passphrase_stdin, stdin: std::io::stdin().lock() }
    }

    /// Whether a passphrase was supplied at all (stdin flag or VAULT_PASSPHRASE).
    pub fn has_passphrase_source(&self) -> bool {
        self.passphrase_stdin || std::env::var_os("VAULT_PASSPHRASE").is_some()
    }

    /// The current passphrase: first stdin line, or VAULT_PASSPHRASE.
    pub fn passphrase(&mut self) -> Result<Passphrase, Failure> {
        self.secret("VAULT_PASSPHRASE", "passphrase")
    }

    /// A new passphrase: next stdin line, or VAULT_NEW_PASSPHRASE.
    pub fn new_passphrase(&mut self) -> Result<Passphrase, Failure> {
        self.secret("VAULT_NEW_PASSPHRASE", "new passphrase")
    }

    fn secret(&mut self, var: &str, what: &str) -> Result<Passphrase, Failure> {
        if self.passphrase_stdin {
            return self
                .stdin_line(what)?
                .ok_or_else(|| Failure::usage(format!("standard input ended before the {what}")));
        }
        match std::env::var(var) {
            Ok(value) => Ok(Passphrase::new(value)),
            Err(_) => Err(Failure::usage(format!("no {what}: set {var} or use --passphrase-stdin"))),
        }
    }

    /// The backup server password: next stdin line, or VAULT_BACKUP_PASSWORD.
    pub fn backup_password(&mut self) -> Result<Passphrase, Failure> {
        self.secret("VAULT_BACKUP_PASSWORD", "backup server password")
    }

    /// A new backup server password: next stdin line, or VAULT_BACKUP_NEW_PASSWORD.
    pub fn new_backup_password(&mut self) -> Result<Passphrase, Failure> {
        self.secret("VAULT_BACKUP_NEW_PASSWORD", "new backup server password")
    }

    /// The TPM PIN: with `from_stdin`, the next stdin line (the first, when read before any
    /// passphrase); otherwise VAULT_TPM_PIN, or none.
    #[cfg_attr(not(feature = "tpm"), allow(dead_code))]
    pub fn tpm_pin(&mut self, from_stdin: bool) -> Result<Option<Passphrase>, Failure> {
        if from_stdin {
            return self
                .stdin_line("TPM PIN")?
                .map(Some)
                .ok_or_else(|| Failure::usage("standard input ended before the TPM PIN".to_owned()));
        }
        Ok(std::env::var("VAULT_TPM_PIN").ok().map(Passphrase::new))
    }

    /// The recovery code: the next stdin line (after any passwords read from it), in zeroized
    /// memory until handed over.
    pub fn recovery_code(&mut self) -> Result<String, Failure> {
        let line = self
            .stdin_line("recovery code")?
            .ok_or_else(|| Failure::usage("standard input ended before the recovery code".to_owned()))?;
        Ok(line.expose_secret().trim().to_owned())
    }

    /// With --passphrase-stdin, every further non-empty stdin line as a passphrase (for
    /// commands that need the secrets of several slots); nothing otherwise.
    pub fn remaining_passphrases(&mut self) -> Result<Vec<Passphrase>, Failure> {
        let mut out = Vec::new();
        while self.passphrase_stdin {
            match self.stdin_line("passphrase")? {
                Some(p) if !p.is_empty() => out.push(p),
                Some(_) => {}
                None => break,
            }
        }
        Ok(out)
    }

    /// The next stdin line, without its line ending, read into zeroized memory; `None` at the end.
    fn stdin_line(&mut self, what: &str) -> Result<Option<Passphrase>, Failure> {
        let mut line = Zeroizing::new(String::new());
        let n = self
            .stdin
            .read_line(&mut line)
            .map_err(|e| Failure::usage(format!("cannot read the {what} from stdin: {}", e.kind())))?;
        Ok((n > 0).then(|| Passphrase::new(line.trim_end_matches(['\n', '\r']).to_owned())))
    }

    /// The remaining stdin lines, for `msg add --stdin`.
    pub fn lines(&mut self) -> impl Iterator<Item = std::io::Result<String>> + '_ {
        (&mut self.stdin).lines()
    }
}
