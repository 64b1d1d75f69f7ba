//! What every command is given: the vault directory, how to unlock, input, and output.

use std::io::Write;
use std::path::{Path, PathBuf};

use vault_core::{SoftwareKeyWrapper, Vault};

use crate::failure::{Failure, exit};
use crate::input::Input;

/// Everything a command needs: options, input, output.
pub(crate) struct Context<'a> {
    pub(crate) dir: PathBuf,
    pub(crate) device_key: Option<PathBuf>,
    pub(crate) json: bool,
    pub(crate) input: Input,
    out: &'a mut dyn Write,
}

impl<'a> Context<'a> {
    /// A context for the vault at `dir`.
    pub(crate) fn new(
        dir: PathBuf,
        device_key: Option<PathBuf>,
        json: bool,
        input: Input,
        out: &'a mut dyn Write,
    ) -> Self {
        Self { dir, device_key, json, input, out }
    }

    /// Unlocks with the device key file (the library finishes an interrupted key-file rotation).
    pub(crate) fn unlock_with_device_key(&self, path: &Path) -> Result<(Vault, SoftwareKeyWrapper), Failure> {
        Ok(Vault::unlock_with_key_file(&self.dir, path)?)
    }

    pub(crate) fn unlock(&mut self) -> Result<Vault, Failure> {
        match self.device_key.clone() {
            Some(path) => Ok(self.unlock_with_device_key(&path)?.0),
            None => {
                let passphrase = self.input.passphrase()?;
                Ok(Vault::unlock_with_passphrase(&self.dir, &passphrase)?)
            }
        }
    }

    pub(crate) fn print(&mut self, text: impl std::fmt::Display) -> Result<(), Failure> {
        writeln!(self.out, "{text}")
            .map_err(|e| Failure { code: exit::OTHER, message: format!("cannot write output: {}", e.kind()) })
    }

    pub(crate) fn print_json(&mut self, value: &serde_json::Value) -> Result<(), Failure> {
        self.print(value)
    }

    /// Prints a report of the library as JSON (report types derive `Serialize`).
    pub(crate) fn print_report(&mut self, report: &impl serde::Serialize) -> Result<(), Failure> {
        let value = serde_json::to_value(report)
            .map_err(|_| Failure { code: exit::OTHER, message: "cannot render the report as JSON".into() })?;
        self.print_json(&value)
    }
}
