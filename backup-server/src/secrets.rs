//! The server's one secret, the OPAQUE `ServerSetup`, and the keys derived from it.
//!
//! Every replica of one deployment loads the same setup (from a file or an environment variable),
//! so every key below is the same on all replicas and nothing secret lives in the object store.
//! Replacing the setup invalidates every registration, token and in-flight login.
//!
//! Setup file format (version 1): the 8 bytes `VBSETUP1` followed by opaque-ke's serialisation of
//! `ServerSetup<OpaqueSuite>` (OPRF seed, server key pair, dummy-record key). The environment
//! variable carries the same bytes in unpadded base64url.

use std::io::Write as _;
use std::path::Path;

use backup_api::OpaqueSuite;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use opaque_ke::ServerSetup;
use zeroize::Zeroizing;

const SETUP_MAGIC: &[u8; 8] = b"VBSETUP1";
const MAX_SETUP_FILE_LEN: u64 = 4096;

/// Why the server setup could not be loaded or created. Never contains secret bytes.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The file or variable does not hold a version-1 setup.
    #[error("{0} does not hold a valid server setup (expected the VBSETUP1 format)")]
    Malformed(String),
    /// The setup file is readable by other users.
    #[error("{0} is readable by other users; restrict it with chmod 600")]
    TooOpen(String),
    /// Reading or creating the file failed.
    #[error("cannot read or create the setup file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A keyed, pseudonymous account identifier: `BLAKE3-keyed(account key, account name)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountHash([u8; 32]);

impl AccountHash {
    /// Wraps raw hash bytes (as carried in tokens and sealed states).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, as used in storage paths.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the hex form of a storage path back.
    pub fn from_hex(text: &str) -> Option<Self> {
        Some(Self(hex::decode(text).ok()?.try_into().ok()?))
    }

    /// A short tag for logs: the first 12 hex characters of the hash (never the account name).
    pub fn tag(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl std::fmt::Debug for AccountHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccountHash({})", self.tag())
    }
}

/// A 256-bit key derived from the setup; zeroized on drop.
pub type DerivedKey = Zeroizing<[u8; 32]>;

/// The loaded setup and the purpose keys derived from it with BLAKE3 `derive_key`.
pub struct ServerSecrets {
    setup: ServerSetup<OpaqueSuite>,
    account_key: DerivedKey,
    token_key: DerivedKey,
    state_key: DerivedKey,
    device_key: DerivedKey,
    decoy_key: DerivedKey,
}

/// Derivation contexts, one per purpose (listed in docs/server-api.md).
mod context {
    pub const ACCOUNT: &str = "vault-backup-server 2026-11-27 account identifier hash v1";
    pub const TOKEN: &str = "vault-backup-server 2026-11-27 session token mac v1";
    pub const STATE: &str = "vault-backup-server 2026-11-27 sealed protocol state v1";
    pub const DEVICE: &str = "vault-backup-server 2026-11-27 device token hash v1";
    pub const DECOY: &str = "vault-backup-server 2026-11-27 decoy credential nonce v1";
}

impl ServerSecrets {
    /// Parses a version-1 setup (`VBSETUP1 ‖ setup`). `origin` names the source in errors.
    pub fn from_setup_bytes(bytes: &[u8], origin: &str) -> Result<Self, SetupError> {
        let body = bytes.strip_prefix(SETUP_MAGIC).ok_or_else(|| SetupError::Malformed(origin.to_owned()))?;
        let setup =
            ServerSetup::<OpaqueSuite>::deserialize(body).map_err(|_| SetupError::Malformed(origin.to_owned()))?;
        Ok(Self::from_setup(setup))
    }

    /// Parses the base64url form used in the `BACKUP_SERVER_SETUP` environment variable.
    pub fn from_env_value(value: &str) -> Result<Self, SetupError> {
        let origin = "the BACKUP_SERVER_SETUP environment variable";
        let bytes =
            Zeroizing::new(URL_SAFE_NO_PAD.decode(value.trim()).map_err(|_| SetupError::Malformed(origin.to_owned()))?);
        Self::from_setup_bytes(&bytes, origin)
    }

    /// A fresh random setup (for tests and benchmarks; servers use [`Self::load_or_create`]).
    pub fn generate() -> Self {
        Self::from_setup(ServerSetup::<OpaqueSuite>::new(&mut rand_08::rngs::OsRng))
    }

    /// The version-1 encoding of this setup. Secret: write it only to a 0600 file.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(256));
        out.extend_from_slice(SETUP_MAGIC);
        out.extend_from_slice(&self.setup.serialize());
        out
    }

    /// Loads the setup from `path`, or creates it there (mode 0600, never replacing a file) if it
    /// does not exist. Returns whether it was created. Refuses a file other users can read.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SetupError> {
        let shown = path.display().to_string();
        let io = |source| SetupError::Io { path: shown.clone(), source };
        match std::fs::metadata(path) {
            Ok(meta) => {
                check_private(&meta, &shown)?;
                if meta.len() > MAX_SETUP_FILE_LEN {
                    return Err(SetupError::Malformed(shown));
                }
                let bytes = Zeroizing::new(std::fs::read(path).map_err(io)?);
                Ok((Self::from_setup_bytes(&bytes, &shown)?, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secrets = Self::generate();
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(io)?;
                file.write_all(&secrets.encode()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok((secrets, true))
            }
            Err(e) => Err(io(e)),
        }
    }

    fn from_setup(setup: ServerSetup<OpaqueSuite>) -> Self {
        let encoded = Zeroizing::new(setup.serialize().to_vec());
        let derive = |ctx: &str| Zeroizing::new(blake3::derive_key(ctx, &encoded));
        Self {
            account_key: derive(context::ACCOUNT),
            token_key: derive(context::TOKEN),
            state_key: derive(context::STATE),
            device_key: derive(context::DEVICE),
            decoy_key: derive(context::DECOY),
            setup,
        }
    }

    /// The OPAQUE server setup.
    pub fn setup(&self) -> &ServerSetup<OpaqueSuite> {
        &self.setup
    }

    /// The server's static OPAQUE public key (what clients pin).
    pub fn public_key(&self) -> Vec<u8> {
        self.setup.keypair().public().serialize().to_vec()
    }

    /// The pseudonymous hash under which an account is stored.
    pub fn account_hash(&self, account: &str) -> AccountHash {
        AccountHash(*blake3::keyed_hash(&self.account_key, account.as_bytes()).as_bytes())
    }

    /// The key that authenticates session tokens.
    pub fn token_key(&self) -> &[u8; 32] {
        &self.token_key
    }

    /// The key that seals protocol state handed to clients between messages.
    pub fn state_key(&self) -> &[u8; 32] {
        &self.state_key
    }

    /// The key under which device-token secrets are hashed for storage.
    pub fn device_key(&self) -> &[u8; 32] {
        &self.device_key
    }

    /// The credential nonce used for accounts that do not exist or are locked: stable per account
    /// (so repeated attempts look consistent) and unrelated to any real registration's nonce.
    pub fn decoy_nonce(&self, account: &AccountHash) -> [u8; 16] {
        let hash = blake3::keyed_hash(&self.decoy_key, account.as_bytes());
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&hash.as_bytes()[..16]);
        nonce
    }

    /// A stable, keyed choice among `options` alternatives for an account's decoy (its
    /// key-stretching parameters), independent of [`Self::decoy_nonce`].
    pub fn decoy_choice(&self, account: &AccountHash, options: usize) -> usize {
        let hash = blake3::keyed_hash(&self.decoy_key, account.as_bytes());
        let word = u64::from_le_bytes(hash.as_bytes()[16..24].try_into().unwrap_or_default());
        usize::try_from(word % options.max(1) as u64).unwrap_or(0)
    }
}

#[cfg(unix)]
fn check_private(meta: &std::fs::Metadata, shown: &str) -> Result<(), SetupError> {
    use std::os::unix::fs::PermissionsExt as _;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(SetupError::TooOpen(shown.to_owned()));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_meta: &std::fs::Metadata, _shown: &str) -> Result<(), SetupError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_file_is_created_private_and_reloads_to_the_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/setup.key");
        let (first, created) = ServerSecrets::load_or_create(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (second, created) = ServerSecrets::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.public_key(), second.public_key());
        assert_eq!(first.account_hash("alice"), second.account_hash("alice"));
        assert_ne!(first.account_hash("alice"), first.account_hash("bob"));
    }

    #[cfg(unix)]
    #[test]
    fn a_readable_setup_file_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("setup.key");
        ServerSecrets::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(ServerSecrets::load_or_create(&path), Err(SetupError::TooOpen(_))));
    }

    #[test]
    fn malformed_setups_are_refused_without_echoing_them() {
        for bad in [&b""[..], b"VBSETUP1", b"VBSETUP1\x00\x01", b"XXXXXXXXsomething"] {
            let err = ServerSecrets::from_setup_bytes(bad, "test").err().unwrap();
            assert!(matches!(err, SetupError::Malformed(_)));
        }
        let secrets = ServerSecrets::generate();
        let value = URL_SAFE_NO_PAD.encode(secrets.encode());
        let loaded = ServerSecrets::from_env_value(&value).unwrap();
        assert_eq!(loaded.public_key(), secrets.public_key());
        let err = ServerSecrets::from_env_value("not base64 !").err().unwrap();
        assert!(!err.to_string().contains("not base64"));
    }

    #[test]
    fn decoy_nonces_are_stable_and_per_account() {
        let secrets = ServerSecrets::generate();
        let a = secrets.account_hash("a");
        let b = secrets.account_hash("b");
        assert_eq!(secrets.decoy_nonce(&a), secrets.decoy_nonce(&a));
        assert_ne!(secrets.decoy_nonce(&a), secrets.decoy_nonce(&b));
    }
}
