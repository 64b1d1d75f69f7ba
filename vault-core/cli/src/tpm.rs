//! The TPM options (`--tpm`, `--tpm-pin-stdin`, `--tpm-tcti`, `--tpm-pcrs`): a TPM key wrapper
//! for unlocking, new slots and re-sealing. Without the `tpm` feature every TPM option fails with
//! a message that says so; the rest of the tool is unchanged.

use vault_core::{Error, KeyWrapper, WrapperError};

use crate::failure::{Failure, exit};
use crate::input::Input;

/// What the command line says about the TPM (without the `tpm` feature only `enabled` is read:
/// any TPM command is refused).
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(feature = "tpm"), allow(dead_code))]
pub(crate) struct TpmOptions {
    /// `--tpm`: unlock with (and, with `init`, add) a TPM slot.
    pub(crate) enabled: bool,
    /// `--tpm-pin-stdin`: the PIN is the first stdin line.
    pub(crate) pin_stdin: bool,
    /// `--tpm-tcti`.
    pub(crate) tcti: Option<String>,
    /// `--tpm-pcrs`.
    pub(crate) pcrs: Option<String>,
}

/// The TPM wrapper the options describe, connected (the PIN is read now: the first stdin line
/// with `--tpm-pin-stdin`, so call this before reading any passphrase).
#[cfg(feature = "tpm")]
pub(crate) fn open(options: &TpmOptions, input: &mut Input) -> Result<Box<dyn KeyWrapper>, Failure> {
    use vault_tpm::blob::PcrSelection;
    use vault_tpm::{TpmConfig, TpmKeyWrapper, TpmPin};

    let pin = input.tpm_pin(options.pin_stdin)?;
    let pin = pin.map(|p| TpmPin::new(p.expose_secret().to_owned())).transpose().map_err(tpm_failure)?;
    let mut config = match &options.tcti {
        Some(tcti) => TpmConfig::with_tcti(tcti.clone()),
        None => TpmConfig::from_env().map_err(tpm_failure)?,
    };
    if let Some(list) = &options.pcrs {
        config.pcrs = Some(
            PcrSelection::parse_list(list)
                .map_err(|_| Failure::usage("--tpm-pcrs takes a comma-separated list of PCR numbers from 0 to 23"))?,
        );
    }
    Ok(Box::new(TpmKeyWrapper::open(config, pin).map_err(tpm_failure)?))
}

/// Without the `tpm` feature: a clear refusal.
#[cfg(not(feature = "tpm"))]
pub(crate) fn open(_: &TpmOptions, _: &mut Input) -> Result<Box<dyn KeyWrapper>, Failure> {
    Err(Failure {
        code: exit::OTHER,
        message: "this vault was built without TPM support (build vault-cli with `--features tpm`)".into(),
    })
}

#[cfg(feature = "tpm")]
fn tpm_failure(e: vault_tpm::TpmError) -> Failure {
    use vault_tpm::TpmError as E;
    let code = match &e {
        E::BadTcti(_) | E::BadPin(_) => exit::USAGE,
        E::PinNeeded => exit::USAGE,
        E::WrongPin => exit::AUTHENTICATION,
        E::LockedOut { .. } => exit::LOCKED_OUT,
        _ => exit::OTHER,
    };
    Failure { code, message: e.to_string() }
}

/// A failure of an operation through the TPM slot, in the TPM's terms where the library's words
/// are the generic keystore ones. Exit codes stay those of the library's error.
pub(crate) fn failure(e: Error) -> Failure {
    let message = match &e {
        Error::KeyWrapper(WrapperError::KeyInvalidated) => {
            "the TPM slot is unusable: the TPM was cleared or is another TPM, or the PCRs the slot is \
             sealed to changed; unlock with another slot, then remove the dead slot (`vault key \
             remove-slot`) and add a new one (`vault key add-tpm`)"
                .to_owned()
        }
        Error::KeyWrapper(WrapperError::Unavailable) => "the TPM is unavailable; retry later".to_owned(),
        Error::KeyWrapper(WrapperError::LockedOut { retry_after_secs }) => match retry_after_secs {
            Some(secs) => format!(
                "the TPM is locked out after too many wrong PINs (dictionary-attack protection); retry in \
                 {secs} s, or unlock with another slot"
            ),
            None => {
                "the TPM is locked out after too many wrong PINs; retry later, or unlock with another slot".to_owned()
            }
        },
        _ => return e.into(),
    };
    Failure { code: Failure::from(e).code, message }
}
