//! A TPM 2.0 key wrapper for `vault-core`: a key-wrapper slot whose KEK is sealed by the TPM of a
//! laptop, desktop, server or Linux phone, so the vault opens on that machine only (and, with a
//! PIN, only with it, under the TPM's own guess limit).
//!
//! - [`blob`]: the versioned wrapped-key format a TPM slot stores (always built, needs no system
//!   library; parsed from hostile bytes without panicking).
//! - `TpmKeyWrapper`, `TpmConfig`, `TpmPin`, `TpmError` (feature `tpm`): the wrapper itself, over
//!   the `tss-esapi` crate and the system TSS 2.0 libraries (Debian: `libtss2-dev`).
//!
//! The key hierarchy, the choice of parent, the PIN and PCR options and the errors are described
//! in `docs/key-hierarchy.md` (TPM slots); the byte layout in `docs/formats.md`.
//!
//! The TPM is found through a TCTI string ([`tcti_from_env`]): `device:/dev/tpmrm0` (the kernel's
//! resource manager, the default), `tabrmd:` (the user-space resource manager), or
//! `swtpm:host=127.0.0.1,port=2321` (a software TPM, as the tests use).

pub mod blob;
#[cfg(feature = "tpm")]
mod wrapper;

#[cfg(feature = "tpm")]
pub use wrapper::{TpmConfig, TpmError, TpmKeyWrapper, TpmPin};

/// Every TPM slot's label starts with this (then `-` and the manufacturer id, when known).
pub const TPM_LABEL_PREFIX: &str = "tpm2";

/// The environment variables that name a TCTI, in the order they are read: tpm2-tools' variable,
/// then the TSS's own conventions.
pub const TCTI_VARIABLES: [&str; 3] = ["TPM2TOOLS_TCTI", "TSS2_TCTI", "TCTI"];

/// The device nodes tried, in order, when no variable names a TCTI: the kernel's resource manager
/// (shared safely between programs), then the raw device.
pub const DEFAULT_DEVICES: [&str; 2] = ["/dev/tpmrm0", "/dev/tpm0"];

/// The TCTI to use: the first non-empty variable of [`TCTI_VARIABLES`], else the first device of
/// [`DEFAULT_DEVICES`] that exists (as `device:PATH`), else `None` (no TPM on this machine).
pub fn tcti_from_env() -> Option<String> {
    tcti_from(|name| std::env::var(name).ok(), |path| std::path::Path::new(path).exists())
}

fn tcti_from(var: impl Fn(&str) -> Option<String>, exists: impl Fn(&str) -> bool) -> Option<String> {
    TCTI_VARIABLES
        .iter()
        .find_map(|name| var(name).filter(|v| !v.trim().is_empty()))
        .map(|v| v.trim().to_owned())
        .or_else(|| DEFAULT_DEVICES.iter().find(|d| exists(d)).map(|d| format!("device:{d}")))
}

/// Whether a slot label is one this crate's wrapper writes.
pub fn is_tpm_label(label: &str) -> bool {
    label == TPM_LABEL_PREFIX || label.strip_prefix(TPM_LABEL_PREFIX).is_some_and(|rest| rest.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcti_follows_the_variables_then_the_devices() {
        let none = |_: &str| None;
        let vars = |name: &str| match name {
            "TSS2_TCTI" => Some("swtpm:host=127.0.0.1,port=1".to_owned()),
            "TCTI" => Some("device:/dev/other".to_owned()),
            _ => None,
        };
        assert_eq!(tcti_from(vars, |_| true), Some("swtpm:host=127.0.0.1,port=1".to_owned()));
        let tools = |name: &str| (name == "TPM2TOOLS_TCTI").then(|| "tabrmd:".to_owned());
        assert_eq!(tcti_from(tools, |_| false), Some("tabrmd:".to_owned()));
        let empty = |_: &str| Some("  ".to_owned());
        assert_eq!(tcti_from(empty, |d| d == "/dev/tpm0"), Some("device:/dev/tpm0".to_owned()));
        assert_eq!(tcti_from(none, |_| true), Some("device:/dev/tpmrm0".to_owned()));
        assert_eq!(tcti_from(none, |_| false), None);
    }

    #[test]
    fn tpm_labels_are_recognised() {
        assert!(is_tpm_label("tpm2"));
        assert!(is_tpm_label("tpm2-IBM"));
        assert!(!is_tpm_label("tpm2x"));
        assert!(!is_tpm_label("software-key-file"));
    }
}
