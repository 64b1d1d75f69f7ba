//! Key slots: the vault root key (VRK) sealed under each unlock method, like LUKS key slots.
//! Adding, removing or changing a slot rewrites only the small slot file, never the data.

pub(crate) mod slot_file;
pub mod wrapper;

use crate::crypto::kdf::{self, KdfParams};
use crate::crypto::{aead, random_array};
use crate::error::Error;
use crate::secret::{Passphrase, SecretKey};
use slot_file::{SALT_LEN, SEALED_KEY_LEN, Slot, SlotFile, SlotId, SlotKind};
use wrapper::{KeyWrapper, WrapperError};

/// What kind of unlock method a slot is, as shown to users.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotMethod {
    /// A passphrase stretched with Argon2id.
    Passphrase {
        /// The Argon2id cost parameters of this slot.
        kdf: KdfParams,
    },
    /// A key wrapper (platform keystore, or the software key file).
    KeyWrapper {
        /// The wrapper's label.
        label: String,
        /// Whether the wrapper reported itself hardware-backed when the slot was made.
        hardware_backed: bool,
    },
}

/// A description of one key slot, without any key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// The slot's stable number.
    pub id: SlotId,
    /// When the slot was created (seconds since the Unix epoch).
    pub created_at: u64,
    /// The unlock method.
    pub method: SlotMethod,
}

impl SlotInfo {
    pub(crate) fn of(slot: &Slot) -> Self {
        let method = match &slot.kind {
            SlotKind::Passphrase { params, .. } => SlotMethod::Passphrase { kdf: *params },
            SlotKind::Wrapper { hardware_backed, label, .. } => {
                SlotMethod::KeyWrapper { label: label.clone(), hardware_backed: *hardware_backed }
            }
        };
        Self { id: slot.id, created_at: slot.created_at, method }
    }
}

fn seal_root_key(
    slot: &Slot,
    vault_id: &[u8; 16],
    kek: &SecretKey,
    root: &SecretKey,
) -> Result<[u8; SEALED_KEY_LEN], Error> {
    let sealed = aead::seal(kek, &slot.aad(vault_id), root.expose_secret());
    <[u8; SEALED_KEY_LEN]>::try_from(sealed.as_slice()).map_err(|_| Error::internal("sealed key length"))
}

fn open_root_key(slot: &Slot, vault_id: &[u8; 16], kek: &SecretKey) -> Result<SecretKey, Error> {
    let opened =
        aead::open(kek, &slot.aad(vault_id), &slot.sealed_root_key).map_err(|_| Error::AuthenticationFailed)?;
    SecretKey::try_from_slice(opened.expose_secret()).ok_or(Error::AuthenticationFailed)
}

/// Builds a passphrase slot holding `root`; returns it with its KEK.
pub(crate) fn passphrase_slot(
    id: SlotId,
    created_at: u64,
    vault_id: &[u8; 16],
    root: &SecretKey,
    passphrase: &Passphrase,
    params: KdfParams,
) -> Result<(Slot, SecretKey), Error> {
    params.validate().map_err(|e| Error::InvalidInput(e.to_string()))?;
    if u64::from(params.memory_kib) * u64::from(params.iterations) > slot_file::MAX_TOTAL_KDF_COST {
        return Err(Error::InvalidInput(
            "memory × iterations exceeds the Argon2id work budget of a key-slot file (4 GiB-passes)".to_owned(),
        ));
    }
    if passphrase.is_empty() {
        return Err(Error::InvalidInput("the passphrase is empty".to_owned()));
    }
    let salt: [u8; SALT_LEN] = random_array().map_err(Error::from_rng)?;
    let kek = kdf::derive_from_passphrase(passphrase, &salt, &params).map_err(Error::from_kdf)?;
    let mut slot =
        Slot { id, created_at, kind: SlotKind::Passphrase { params, salt }, sealed_root_key: [0; SEALED_KEY_LEN] };
    slot.sealed_root_key = seal_root_key(&slot, vault_id, &kek, root)?;
    Ok((slot, kek))
}

/// Builds a key-wrapper slot holding `root`: a random KEK seals the root key, and the wrapper
/// wraps the KEK, so the root key itself never crosses into the platform keystore.
pub(crate) fn wrapper_slot(
    id: SlotId,
    created_at: u64,
    vault_id: &[u8; 16],
    root: &SecretKey,
    wrapper: &dyn KeyWrapper,
) -> Result<(Slot, SecretKey), Error> {
    let descriptor = wrapper.descriptor();
    if descriptor.label.len() > slot_file::MAX_LABEL_LEN || descriptor.label.is_empty() {
        return Err(Error::InvalidInput("key wrapper label must be 1 to 64 bytes".to_owned()));
    }
    let kek = SecretKey::generate().map_err(Error::from_rng)?;
    let wrapped_kek = wrapper.wrap(kek.expose_secret()).map_err(Error::KeyWrapper)?;
    if wrapped_kek.is_empty() || wrapped_kek.len() > slot_file::MAX_WRAPPED_LEN {
        return Err(Error::InvalidInput("key wrapper returned an empty or oversized blob".to_owned()));
    }
    let mut slot = Slot {
        id,
        created_at,
        kind: SlotKind::Wrapper { hardware_backed: descriptor.hardware_backed, label: descriptor.label, wrapped_kek },
        sealed_root_key: [0; SEALED_KEY_LEN],
    };
    slot.sealed_root_key = seal_root_key(&slot, vault_id, &kek, root)?;
    Ok((slot, kek))
}

/// A slot opened by its secret: the root key, the slot, and the slot's KEK (kept so the slot
/// can be re-sealed when the root key rotates).
pub(crate) struct Opened {
    pub(crate) root: SecretKey,
    pub(crate) slot: SlotId,
    pub(crate) kek: SecretKey,
}

/// Most passphrase slots a file may hold: bounds the Argon2id work one unlock attempt can be
/// made to do by a hostile slot file.
pub(crate) const MAX_PASSPHRASE_SLOTS: usize = 8;

/// The KEK of passphrase slot `slot` for `passphrase` (not yet checked).
fn passphrase_kek(slot: &Slot, passphrase: &Passphrase) -> Result<Option<SecretKey>, Error> {
    match &slot.kind {
        SlotKind::Passphrase { params, salt } => {
            Ok(Some(kdf::derive_from_passphrase(passphrase, salt, params).map_err(Error::from_kdf)?))
        }
        SlotKind::Wrapper { .. } => Ok(None),
    }
}

/// The KEK of wrapper slot `slot` as unwrapped by `wrapper` (not yet checked).
fn wrapper_kek(slot: &Slot, wrapper: &dyn KeyWrapper) -> Result<Option<SecretKey>, Error> {
    match &slot.kind {
        SlotKind::Wrapper { label, wrapped_kek, .. } if *label == wrapper.descriptor().label => {
            match wrapper.unwrap(wrapped_kek) {
                Ok(bytes) => Ok(SecretKey::try_from_slice(bytes.expose_secret())),
                Err(WrapperError::Rejected) => Ok(None),
                Err(other) => Err(Error::KeyWrapper(other)),
            }
        }
        _ => Ok(None),
    }
}

/// A secret that can open a slot: what unlock and root-key rotation are given.
#[derive(Clone, Copy)]
pub enum SlotSecret<'a> {
    /// A passphrase, for passphrase slots.
    Passphrase(&'a Passphrase),
    /// A key wrapper, for wrapper slots with its label.
    Wrapper(&'a dyn KeyWrapper),
}

impl std::fmt::Debug for SlotSecret<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotSecret::Passphrase(_) => f.write_str("SlotSecret::Passphrase([REDACTED])"),
            SlotSecret::Wrapper(w) => write!(f, "SlotSecret::Wrapper({})", w.descriptor().label),
        }
    }
}

/// The KEK `secret` yields for `slot`, if it opens that slot's sealed root key.
pub(crate) fn kek_for(
    file: &SlotFile,
    slot: &Slot,
    secret: SlotSecret<'_>,
) -> Result<Option<(SecretKey, SecretKey)>, Error> {
    let kek = match secret {
        SlotSecret::Passphrase(p) => passphrase_kek(slot, p)?,
        SlotSecret::Wrapper(w) => wrapper_kek(slot, w)?,
    };
    Ok(kek.and_then(|kek| open_root_key(slot, &file.vault_id, &kek).ok().map(|root| (root, kek))))
}

/// Tries every slot `secret` applies to. Keystore failures other than a refused blob
/// (cancelled, unavailable, locked out) are returned as they are; a slot whose keystore key is
/// invalidated is skipped (another slot of the same wrapper may still open, for example one
/// made after a TPM was cleared) and reported only if no slot opens; everything else is
/// [`Error::AuthenticationFailed`].
pub(crate) fn open(file: &SlotFile, secret: SlotSecret<'_>) -> Result<Opened, Error> {
    let mut invalidated = None;
    for slot in &file.slots {
        match kek_for(file, slot, secret) {
            Ok(Some((root, kek))) => return Ok(Opened { root, slot: slot.id, kek }),
            Ok(None) => {}
            Err(e @ Error::KeyWrapper(WrapperError::KeyInvalidated)) => invalidated = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(invalidated.unwrap_or(Error::AuthenticationFailed))
}

/// Whether `kek` opens `slot` of `file` and yields exactly `root`.
pub(crate) fn opens_to(file: &SlotFile, slot: &Slot, kek: &SecretKey, root: &SecretKey) -> bool {
    open_root_key(slot, &file.vault_id, kek).is_ok_and(|opened| opened.expose_secret() == root.expose_secret())
}

/// Re-seals `root` in `slot` under the slot's existing `kek` (root-key rotation).
pub(crate) fn reseal(slot: &mut Slot, vault_id: &[u8; 16], kek: &SecretKey, root: &SecretKey) -> Result<(), Error> {
    slot.sealed_root_key = seal_root_key(slot, vault_id, kek, root)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretBytes;

    const FAST: KdfParams = KdfParams { memory_kib: KdfParams::MIN_MEMORY_KIB, iterations: 1, parallelism: 1 };

    fn file_with(slot: Slot) -> SlotFile {
        SlotFile { vault_id: [5; 16], next_slot_id: slot.id.0 + 1, slots: vec![slot] }
    }

    #[test]
    fn passphrase_slot_opens_only_with_its_passphrase() {
        let root = SecretKey::from_bytes([3; 32]);
        let pass = Passphrase::new("right".to_owned());
        let (slot, _) = passphrase_slot(SlotId(0), 1, &[5; 16], &root, &pass, FAST).unwrap_or_else(|e| panic!("{e}"));
        let file = file_with(slot);
        let opened = open(&file, SlotSecret::Passphrase(&pass)).map(|o| (*o.root.expose_secret(), o.slot));
        assert_eq!(opened.ok(), Some(([3; 32], SlotId(0))));
        let wrong = open(&file, SlotSecret::Passphrase(&Passphrase::new("wrong".to_owned())));
        assert!(matches!(wrong, Err(Error::AuthenticationFailed)));
    }

    #[test]
    fn a_slot_moved_to_another_vault_or_id_does_not_open() {
        let root = SecretKey::from_bytes([3; 32]);
        let pass = Passphrase::new("right".to_owned());
        let (slot, _) = passphrase_slot(SlotId(0), 1, &[5; 16], &root, &pass, FAST).unwrap_or_else(|e| panic!("{e}"));
        let mut other_vault = file_with(slot.clone());
        other_vault.vault_id = [6; 16];
        assert!(matches!(
            open(&other_vault, SlotSecret::Passphrase(&pass)).map(|_| ()),
            Err(Error::AuthenticationFailed)
        ));
        let mut renumbered = slot;
        renumbered.id = SlotId(1);
        assert!(matches!(
            open(&file_with(renumbered), SlotSecret::Passphrase(&pass)).map(|_| ()),
            Err(Error::AuthenticationFailed)
        ));
    }

    struct Failing(WrapperError);
    impl KeyWrapper for Failing {
        fn wrap(&self, _: &[u8]) -> Result<Vec<u8>, WrapperError> {
            Ok(vec![1; 48])
        }
        fn unwrap(&self, _: &[u8]) -> Result<SecretBytes, WrapperError> {
            Err(self.0.clone())
        }
        fn descriptor(&self) -> wrapper::WrapperDescriptor {
            wrapper::WrapperDescriptor { label: "test".to_owned(), hardware_backed: true }
        }
    }

    #[test]
    fn keystore_failures_are_reported_as_such() {
        let root = SecretKey::from_bytes([3; 32]);
        let failing = Failing(WrapperError::KeyInvalidated);
        let (slot, _) = wrapper_slot(SlotId(0), 1, &[5; 16], &root, &failing).unwrap_or_else(|e| panic!("{e}"));
        let file = file_with(slot);
        assert!(matches!(
            open(&file, SlotSecret::Wrapper(&failing)).map(|_| ()),
            Err(Error::KeyWrapper(WrapperError::KeyInvalidated))
        ));
        let rejecting = Failing(WrapperError::Rejected);
        assert!(matches!(open(&file, SlotSecret::Wrapper(&rejecting)).map(|_| ()), Err(Error::AuthenticationFailed)));
    }

    /// Opens the first slot; refuses every other one as invalidated.
    struct FirstOnly(SecretBytes);
    impl KeyWrapper for FirstOnly {
        fn wrap(&self, kek: &[u8]) -> Result<Vec<u8>, WrapperError> {
            Ok(kek.to_vec())
        }
        fn unwrap(&self, wrapped: &[u8]) -> Result<SecretBytes, WrapperError> {
            if wrapped == self.0.expose_secret() {
                Ok(SecretBytes::new(wrapped.to_vec()))
            } else {
                Err(WrapperError::KeyInvalidated)
            }
        }
        fn descriptor(&self) -> wrapper::WrapperDescriptor {
            wrapper::WrapperDescriptor { label: "test".to_owned(), hardware_backed: true }
        }
    }

    #[test]
    fn an_invalidated_slot_does_not_hide_a_later_slot_of_the_same_wrapper() {
        let root = SecretKey::from_bytes([3; 32]);
        let (dead, _) = wrapper_slot(SlotId(0), 1, &[5; 16], &root, &Failing(WrapperError::KeyInvalidated)).unwrap();
        let opener = FirstOnly(SecretBytes::new(Vec::new()));
        let (live, kek) = wrapper_slot(SlotId(1), 1, &[5; 16], &root, &opener).unwrap();
        let opener = FirstOnly(SecretBytes::new(kek.expose_secret().to_vec()));
        let mut file = file_with(dead);
        file.slots.push(live);
        file.next_slot_id = 2;
        let opened = open(&file, SlotSecret::Wrapper(&opener)).map(|o| (o.slot, *o.root.expose_secret()));
        assert_eq!(opened.ok(), Some((SlotId(1), [3; 32])));
        // With only the dead slot, the invalidation is what is reported.
        file.slots.pop();
        assert!(matches!(
            open(&file, SlotSecret::Wrapper(&opener)).map(|_| ()),
            Err(Error::KeyWrapper(WrapperError::KeyInvalidated))
        ));
    }
}
