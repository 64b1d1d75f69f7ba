//! What every command is given: the vault directory, how to unlock, input, and output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vault_core::{KeyWrapper, SoftwareKeyWrapper, Vault};

use crate::failure::{Failure, exit};
use crate::input::Input;
use crate::tpm::TpmOptions;

/// Everything a command needs: options, input, output.
pub(crate) struct Context<'a> {
    pub(crate) dir: PathBuf,
    pub(crate) device_key: Option<PathBuf>,
    pub(crate) json: bool,
    pub(crate) input: Input,
    pub(crate) tpm: TpmOptions,
    tpm_wrapper: Option<Arc<dyn KeyWrapper>>,
    out: &'a mut dyn Write,
}

impl<'a> Context<'a> {
    /// A context for the vault at `dir`.
    pub(crate) fn new(
        dir: PathBuf,
        device_key: Option<PathBuf>,
        json: bool,
        input: Input,
        tpm: TpmOptions,
        out: &'a mut dyn Write,
    ) -> Self {
        Self { dir, device_key, json, input, tpm, tpm_wrapper: None, out }
    }

    /// The TPM wrapper, connected on first use (which reads the TPM PIN, if any: call it before
    /// reading a passphrase).
    pub(crate) fn tpm_wrapper(&mut self) -> Result<Arc<dyn KeyWrapper>, Failure> {
        if let Some(wrapper) = &self.tpm_wrapper {
            return Ok(Arc::clone(wrapper));
        }
        let wrapper: Arc<dyn KeyWrapper> = Arc::from(crate::tpm::open(&self.tpm, &mut self.input)?);
        self.tpm_wrapper = Some(Arc::clone(&wrapper));
        Ok(wrapper)
    }

    /// Unlocks with the TPM slot.
    pub(crate) fn unlock_with_tpm(&mut self) -> Result<(Vault, Arc<dyn KeyWrapper>), Failure> {
        let wrapper = self.tpm_wrapper()?;
        let vault = Vault::unlock_with_wrapper(&self.dir, &*wrapper).map_err(crate::tpm::failure)?;
        Ok((vault, wrapper))
    }

    /// Unlocks with the device key file (the library finishes an interrupted key-file rotation).
    pub(crate) fn unlock_with_device_key(&self, path: &Path) -> Result<(Vault, SoftwareKeyWrapper), Failure> {
        Ok(Vault::unlock_with_key_file(&self.dir, path)?)
    }

    pub(crate) fn unlock(&mut self) -> Result<Vault, Failure> {
        if self.tpm.enabled {
            return Ok(self.unlock_with_tpm()?.0);
        }
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
