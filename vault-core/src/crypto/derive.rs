//! Subkey derivation from the vault root key with BLAKE3 `derive_key`, one context string per
//! purpose. The context strings are part of the on-disk format and are listed in
//! `docs/key-hierarchy.md`; never change one.

use crate::secret::SecretKey;

/// The purposes a subkey of the vault root key is derived for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subkey {
    /// The raw 256-bit SQLCipher key of the vault database.
    Database,
}

impl Subkey {
    /// The BLAKE3 `derive_key` context string of this purpose.
    pub(crate) const fn context(self) -> &'static str {
        match self {
            Subkey::Database => "vault-core 2026-11-27 sqlcipher database key v1",
        }
    }
}

/// Derives the subkey for `purpose` from `root`.
pub(crate) fn derive_subkey(root: &SecretKey, purpose: Subkey) -> SecretKey {
    SecretKey::from_bytes(blake3::derive_key(purpose.context(), root.expose_secret()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_deterministic_and_root_dependent() {
        let a = derive_subkey(&SecretKey::from_bytes([7; 32]), Subkey::Database);
        let b = derive_subkey(&SecretKey::from_bytes([7; 32]), Subkey::Database);
        let c = derive_subkey(&SecretKey::from_bytes([8; 32]), Subkey::Database);
        assert_eq!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.expose_secret(), c.expose_secret());
        assert_ne!(a.expose_secret(), &[7; 32]);
    }

    /// Pins the derivation so an accidental change of context string or algorithm is caught: it
    /// would make every existing vault database unreadable.
    #[test]
    fn database_key_derivation_is_pinned() {
        let key = derive_subkey(&SecretKey::from_bytes([0; 32]), Subkey::Database);
        let expected = "5e9a675c7a1a517e1e0e74661813afa89dd8e972f355de414f2f4b29aa0e0937";
        assert_eq!(hex::encode(key.expose_secret()), expected);
    }
}
