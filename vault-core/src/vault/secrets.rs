//! Small app secrets: the [`Secrets`] handle.

use super::{Result, Vault};
use crate::secret::SecretBytes;
use crate::store;
use crate::store::secrets;

/// The small app secrets of a vault (tokens, keys of the app's own). Get one with
/// [`Vault::secrets`].
#[derive(Debug)]
pub struct Secrets<'a> {
    vault: &'a mut Vault,
}

impl Vault {
    /// The app secrets (see [`Secrets`]).
    pub fn secrets(&mut self) -> Secrets<'_> {
        Secrets { vault: self }
    }
}

impl Secrets<'_> {
    /// Stores or replaces a small app secret.
    pub fn put(&mut self, name: &str, value: &[u8]) -> Result<()> {
        secrets::put(&self.vault.store.conn, name, value, store::now_millis())
    }

    /// Reads an app secret.
    pub fn get(&self, name: &str) -> Result<Option<SecretBytes>> {
        secrets::get(&self.vault.store.conn, name)
    }

    /// Deletes an app secret; returns whether it existed.
    pub fn delete(&mut self, name: &str) -> Result<bool> {
        secrets::delete(&self.vault.store.conn, name)
    }

    /// Names of all app secrets.
    pub fn names(&self) -> Result<Vec<String>> {
        secrets::names(&self.vault.store.conn)
    }
}
