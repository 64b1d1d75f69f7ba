//! The hardware key wrapper: a trait the app implements over its platform keystore (Android
//! Keystore / StrongBox, iOS Secure Enclave, a TPM), and a software default for desktops and
//! the CLI that says plainly that it is not hardware-backed.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::crypto::aead;
use crate::secret::{SecretBytes, SecretKey};

/// Why a key wrapper could not wrap or unwrap. Each case is something the app can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WrapperError {
    /// The user dismissed the biometric or device-credential prompt.
    #[error("the user cancelled the key unlock")]
    Cancelled,
    /// The keystore key is gone for good (for example, biometrics were re-enrolled); unlock
    /// with another slot and add a new wrapper slot.
    #[error("the keystore key was permanently invalidated")]
    KeyInvalidated,
    /// The keystore cannot be used right now (locked device, busy secure element).
    #[error("the keystore is unavailable")]
    Unavailable,
    /// Too many failed attempts: the keystore refuses the key for now (a TPM's dictionary-attack
    /// lockout). Retry after `retry_after_secs` seconds when known, or unlock with another slot.
    #[error("the keystore is locked out after too many failed attempts; {}", retry_text(*retry_after_secs))]
    LockedOut {
        /// How long until the keystore accepts one more attempt, when it says.
        retry_after_secs: Option<u64>,
    },
    /// The wrapped bytes were refused (wrong key or tampered); reported as authentication failure.
    #[error("the wrapped key was refused")]
    Rejected,
    /// Any other failure, described without secrets.
    #[error("key wrapper failed: {0}")]
    Other(String),
}

fn retry_text(secs: Option<u64>) -> String {
    match secs {
        Some(secs) => format!("retry in {secs} s or use another slot"),
        None => "retry later or use another slot".to_owned(),
    }
}

/// What a key wrapper says about itself; shown in the privacy dashboard and stored in the slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapperDescriptor {
    /// A short, non-secret label such as `android-strongbox` or `software-key-file`.
    pub label: String,
    /// Whether the wrapping key lives in hardware the OS cannot read out.
    pub hardware_backed: bool,
}

/// Wraps and unwraps small secrets with a key the embedding platform holds.
///
/// `wrap` receives a random per-slot key-encryption key, never the vault root key. Both calls
/// may block to ask the user for biometrics.
pub trait KeyWrapper: Send + Sync {
    /// Encrypts `plaintext` under the platform key.
    fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, WrapperError>;
    /// Decrypts bytes produced by [`KeyWrapper::wrap`].
    fn unwrap(&self, wrapped: &[u8]) -> Result<SecretBytes, WrapperError>;
    /// A description of this wrapper.
    fn descriptor(&self) -> WrapperDescriptor;
}

/// The label stored for slots of [`SoftwareKeyWrapper`].
pub const SOFTWARE_WRAPPER_LABEL: &str = "software-key-file";
const KEY_FILE_MAGIC: &[u8; 8] = b"VLTDEVK1";
const WRAPPED_VERSION: u8 = 1;
const WRAP_AAD: &[u8] = b"vault-core software key wrapper v1";

/// A key wrapper whose key is a file on disk (mode 0600). Software, not hardware-backed: anyone
/// who can read the file can unwrap. For desktops, servers and tests.
///
/// Rotation is crash-safe: [`SoftwareKeyWrapper::prepare_rotation`] creates the next key at
/// `PATH.next`, the vault re-wraps its slot with it, and
/// [`SoftwareKeyWrapper::complete_rotation`] renames it over `PATH`. Until then, opening `PATH`
/// also loads `PATH.next`, so a crash at any point leaves the slot openable.
pub struct SoftwareKeyWrapper {
    key: SecretKey,
    pending: Option<SecretKey>,
    used_pending: AtomicBool,
    path: PathBuf,
}

impl std::fmt::Debug for SoftwareKeyWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKeyWrapper").field("path", &self.path).finish_non_exhaustive()
    }
}

fn io_error(what: &'static str) -> impl Fn(std::io::Error) -> WrapperError {
    move |e| WrapperError::Other(format!("{what}: {}", e.kind()))
}

/// The path of the next key during a rotation.
fn next_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".next");
    path.with_file_name(name)
}

fn read_key_file(path: &Path) -> Result<SecretKey, WrapperError> {
    let meta = fs::symlink_metadata(path).map_err(io_error("cannot read device key file"))?;
    if !meta.is_file() {
        return Err(WrapperError::Other("device key path is not a regular file".to_owned()));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(WrapperError::Other("device key file is readable by other users (chmod 600 it)".to_owned()));
    }
    let bytes =
        SecretBytes::new(crate::fsutil::read_bounded(path, 4096).map_err(io_error("cannot read device key file"))?);
    bytes
        .expose_secret()
        .strip_prefix(KEY_FILE_MAGIC.as_slice())
        .and_then(SecretKey::try_from_slice)
        .ok_or_else(|| WrapperError::Other("device key file is malformed".to_owned()))
}

/// Creates a key file atomically: it appears complete, or not at all, and an existing file is
/// never replaced. Returns `Ok(None)` if the file already exists.
fn create_key_file(path: &Path) -> Result<Option<SecretKey>, WrapperError> {
    let key = SecretKey::generate().map_err(|_| WrapperError::Other("no system randomness".to_owned()))?;
    let contents = SecretBytes::new([KEY_FILE_MAGIC.as_slice(), key.expose_secret()].concat());
    let created = crate::fsutil::write_new(path, 0o600, |e| e, |file| file.write_all(contents.expose_secret()));
    match created {
        Ok(()) => Ok(Some(key)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(io_error("cannot create device key file")(e)),
    }
}

impl SoftwareKeyWrapper {
    /// Opens the key file at `path`, creating it with a new random key (mode 0600) if absent.
    /// Refuses a key file that other users can read or that is malformed.
    pub fn open_or_create(path: &Path) -> Result<Self, WrapperError> {
        match fs::symlink_metadata(path) {
            Ok(_) => Self::open(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match create_key_file(path)? {
                Some(key) => {
                    Ok(Self { key, pending: None, used_pending: AtomicBool::new(false), path: path.to_owned() })
                }
                None => Self::open(path),
            },
            Err(e) => Err(io_error("cannot read device key file")(e)),
        }
    }

    /// Opens an existing key file (and the next key of an unfinished rotation, if any).
    pub fn open(path: &Path) -> Result<Self, WrapperError> {
        let key = read_key_file(path)?;
        let pending = match fs::symlink_metadata(next_path(path)) {
            Ok(_) => Some(read_key_file(&next_path(path))?),
            Err(_) => None,
        };
        Ok(Self { key, pending, used_pending: AtomicBool::new(false), path: path.to_owned() })
    }

    /// Starts a rotation of the key at `path`: creates (or, after a crash, reuses) the next key
    /// at `PATH.next` and returns a wrapper that wraps with it.
    pub fn prepare_rotation(path: &Path) -> Result<Self, WrapperError> {
        let next = next_path(path);
        let key = match create_key_file(&next)? {
            Some(key) => key,
            None => read_key_file(&next)?,
        };
        Ok(Self { key, pending: None, used_pending: AtomicBool::new(false), path: next })
    }

    /// Finishes a rotation: the next key replaces the key at `path`. Call it only after every
    /// slot of the old key has been re-wrapped.
    pub fn complete_rotation(path: &Path) -> Result<(), WrapperError> {
        fs::rename(next_path(path), path).map_err(io_error("cannot install the rotated device key"))?;
        crate::fsutil::sync_parent_dir(path).map_err(io_error("cannot install the rotated device key"))
    }

    /// Whether an unwrap needed the next key of an unfinished rotation (the vault's slot was
    /// already re-wrapped): the caller should then [`SoftwareKeyWrapper::complete_rotation`].
    pub fn unwrapped_with_pending_key(&self) -> bool {
        self.used_pending.load(Ordering::Relaxed)
    }
}

fn unwrap_with(key: &SecretKey, wrapped: &[u8]) -> Result<SecretBytes, WrapperError> {
    match wrapped.split_first() {
        Some((&WRAPPED_VERSION, sealed)) => aead::open(key, WRAP_AAD, sealed).map_err(|_| WrapperError::Rejected),
        _ => Err(WrapperError::Rejected),
    }
}

impl KeyWrapper for SoftwareKeyWrapper {
    fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, WrapperError> {
        let mut out = vec![WRAPPED_VERSION];
        out.extend_from_slice(&aead::seal(&self.key, WRAP_AAD, plaintext));
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<SecretBytes, WrapperError> {
        match (unwrap_with(&self.key, wrapped), &self.pending) {
            (Err(WrapperError::Rejected), Some(pending)) => {
                let result = unwrap_with(pending, wrapped);
                if result.is_ok() {
                    self.used_pending.store(true, Ordering::Relaxed);
                }
                result
            }
            (result, _) => result,
        }
    }

    fn descriptor(&self) -> WrapperDescriptor {
        WrapperDescriptor { label: SOFTWARE_WRAPPER_LABEL.to_owned(), hardware_backed: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_private_key_file_and_round_trips() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("device.key");
        let wrapper = SoftwareKeyWrapper::open_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        let mode = fs::metadata(&path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        assert_eq!(mode, 0o600);
        let wrapped = wrapper.wrap(b"kek").unwrap_or_default();
        let reopened = SoftwareKeyWrapper::open_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        let unwrapped = reopened.unwrap(&wrapped).map(|s| s.expose_secret().to_vec());
        assert_eq!(unwrapped, Ok(b"kek".to_vec()));
        assert!(!reopened.descriptor().hardware_backed);
    }

    #[test]
    fn refuses_world_readable_and_malformed_key_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("device.key");
        assert!(SoftwareKeyWrapper::open_or_create(&path).is_ok());
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o644));
        assert!(matches!(SoftwareKeyWrapper::open(&path), Err(WrapperError::Other(_))));
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
        let _ = fs::write(&path, b"VLTDEVK1short");
        assert!(matches!(SoftwareKeyWrapper::open(&path), Err(WrapperError::Other(_))));
    }

    #[test]
    fn rotation_keeps_the_old_and_new_blobs_openable_until_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        let old = SoftwareKeyWrapper::open_or_create(&path).unwrap();
        let old_blob = old.wrap(b"old").unwrap();
        let next = SoftwareKeyWrapper::prepare_rotation(&path).unwrap();
        let new_blob = next.wrap(b"new").unwrap();
        // Crash here: opening the old path unwraps both, and says the new one needed the next key.
        let during = SoftwareKeyWrapper::open(&path).unwrap();
        assert_eq!(during.unwrap(&old_blob).unwrap().expose_secret(), b"old");
        assert!(!during.unwrapped_with_pending_key());
        assert_eq!(during.unwrap(&new_blob).unwrap().expose_secret(), b"new");
        assert!(during.unwrapped_with_pending_key());
        // Preparing again after a crash reuses the same next key.
        let again = SoftwareKeyWrapper::prepare_rotation(&path).unwrap();
        assert_eq!(again.unwrap(&new_blob).unwrap().expose_secret(), b"new");
        SoftwareKeyWrapper::complete_rotation(&path).unwrap();
        let after = SoftwareKeyWrapper::open(&path).unwrap();
        assert_eq!(after.unwrap(&new_blob).unwrap().expose_secret(), b"new");
        assert!(matches!(after.unwrap(&old_blob), Err(WrapperError::Rejected)));
        assert!(!dir.path().join("device.key.next").exists());
    }

    #[test]
    fn another_key_rejects_wrapped_bytes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = SoftwareKeyWrapper::open_or_create(&dir.path().join("a")).unwrap_or_else(|e| panic!("{e}"));
        let b = SoftwareKeyWrapper::open_or_create(&dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
        let wrapped = a.wrap(b"kek").unwrap_or_default();
        assert!(matches!(b.unwrap(&wrapped), Err(WrapperError::Rejected)));
        assert!(matches!(a.unwrap(&[]), Err(WrapperError::Rejected)));
    }
}
