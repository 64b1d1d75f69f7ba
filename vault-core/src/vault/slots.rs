//! Key-slot management and key rotation: the [`Keys`] handle.

use crate::error::DataKind;
use std::fs;

use super::{
    DATABASE_FILE, Error, KEYSLOTS_NEXT_FILE, Result, SecurityEventKind, SlotFile, SlotId, SlotInfo, SlotMethod,
    SlotSecret, Vault, describe_slot, fsutil, lock_slots, now_secs, read_slot_file, write_slot_file,
};
use crate::crypto::derive::{Purpose, derive_subkey};
use crate::crypto::kdf::KdfParams;
use crate::keys::slot_file::{MAX_TOTAL_KDF_COST, Slot, total_kdf_cost};
use crate::keys::{self, wrapper::KeyWrapper};
use crate::secret::{Passphrase, SecretKey};
use crate::store;
use crate::store::Store;

/// The key slots of a vault and the keys behind them: adding, changing and removing unlock
/// methods, rotating a platform key, rotating the vault root key. Get one with [`Vault::keys`].
#[derive(Debug)]
pub struct Keys<'a> {
    vault: &'a mut Vault,
}

impl Vault {
    /// The key slots and keys (see [`Keys`]).
    pub fn keys(&mut self) -> Keys<'_> {
        Keys { vault: self }
    }

    /// Lists the key slots of the vault in `dir` without unlocking it (the slot file holds no
    /// secret in the clear).
    pub fn inspect_slots(dir: &std::path::Path) -> Result<Vec<SlotInfo>> {
        Ok(read_slot_file(dir)?.slots.iter().map(SlotInfo::of).collect())
    }

    /// The key slots (see [`Keys::list`]).
    pub(super) fn slot_infos(&self) -> Vec<SlotInfo> {
        self.slots.slots.iter().map(SlotInfo::of).collect()
    }

    /// Re-reads the slot file under the slot lock, applies `change`, writes it atomically.
    fn change_slots<T>(&mut self, change: impl FnOnce(&mut SlotFile, &SecretKey) -> Result<T>) -> Result<T> {
        let _lock = lock_slots(&self.dir)?;
        let mut file = self.read_current_slots()?;
        let out = change(&mut file, &self.root)?;
        if total_kdf_cost(&file.slots) > MAX_TOTAL_KDF_COST {
            return Err(Error::InvalidInput(
                "the passphrase slots together would exceed the Argon2id work budget".to_owned(),
            ));
        }
        write_slot_file(&self.dir, &file)?;
        self.slots = file;
        Ok(out)
    }

    /// Re-reads the slot file (under the slot lock) and checks this session is still current:
    /// the slot that unlocked must still open, with this session's KEK, to this session's root
    /// key. Otherwise another process changed the keys, and anything sealed now would seal a
    /// stale root key.
    fn read_current_slots(&self) -> Result<SlotFile> {
        let file = read_slot_file(&self.dir)?;
        let current = file.vault_id == self.slots.vault_id
            && file
                .slots
                .iter()
                .any(|s| s.id == self.unlocked_by && keys::opens_to(&file, s, &self.unlock_kek, &self.root));
        if !current {
            return Err(Error::KeysChanged);
        }
        if self.dir.join(KEYSLOTS_NEXT_FILE).exists() {
            return Err(Error::KeysChanged);
        }
        Ok(file)
    }

    fn allocate_slot_id(file: &mut SlotFile) -> Result<SlotId> {
        if file.slots.len() >= crate::keys::slot_file::MAX_SLOTS {
            return Err(Error::InvalidInput("the vault already has the maximum number of key slots".to_owned()));
        }
        let id = SlotId(file.next_slot_id);
        file.next_slot_id = file.next_slot_id.checked_add(1).ok_or(Error::internal("slot ids exhausted"))?;
        Ok(id)
    }

    /// Replaces slot `id` with the slot `make` builds (same number). If it is the slot that
    /// unlocked, its new KEK is kept for a later root-key rotation.
    fn replace_slot(
        &mut self,
        id: SlotId,
        make: impl FnOnce(SlotId, &[u8; 16], &SecretKey, &SlotMethod) -> Result<(Slot, SecretKey)>,
    ) -> Result<()> {
        let kek = self.change_slots(|file, root| {
            let vault_id = file.vault_id;
            let slot =
                file.slots.iter_mut().find(|s| s.id == id).ok_or_else(|| Error::NotFound(format!("key slot {id}")))?;
            let (new_slot, kek) = make(id, &vault_id, root, &SlotInfo::of(slot).method)?;
            *slot = new_slot;
            Ok(kek)
        })?;
        if id == self.unlocked_by {
            self.unlock_kek = kek;
        }
        Ok(())
    }

    fn record_slot_event(&self, kind: SecurityEventKind, id: SlotId, note: &str) -> Result<()> {
        let detail =
            self.slot_infos().iter().find(|s| s.id == id).map(describe_slot).unwrap_or_else(|| format!("slot {id}"));
        let detail = if note.is_empty() { detail } else { format!("{detail}: {note}") };
        self.record(kind, &detail)
    }

    /// After a failed re-key: reopens the database under the old key on a fresh connection (the
    /// failed one may be half switched) and discards the journal. If the old key no longer opens
    /// it either, the journal stays for the next unlock to resolve.
    fn recover_from_failed_rekey(&mut self, error: Error) -> Error {
        let old_key = derive_subkey(&self.root, Purpose::Database);
        match Store::open(&self.dir.join(DATABASE_FILE), &old_key, &self.slots.vault_id) {
            Ok(store) => {
                self.store = store;
                let _ = fs::remove_file(self.dir.join(KEYSLOTS_NEXT_FILE));
                let _ = fsutil::sync_dir(&self.dir);
                error
            }
            Err(_) => Error::Integrity {
                object: DataKind::Database,
                problem: "the database could not be re-keyed and did not reopen: lock the vault and unlock it again"
                    .to_owned(),
            },
        }
    }
}

impl Keys<'_> {
    /// The key slots.
    pub fn list(&self) -> Vec<SlotInfo> {
        self.vault.slot_infos()
    }

    /// Adds a passphrase slot.
    pub fn add_passphrase(&mut self, passphrase: &Passphrase, kdf: KdfParams) -> Result<SlotId> {
        let id = self.vault.change_slots(|file, root| {
            let passphrase_slots =
                file.slots.iter().filter(|s| matches!(SlotInfo::of(s).method, SlotMethod::Passphrase { .. })).count();
            if passphrase_slots >= keys::MAX_PASSPHRASE_SLOTS {
                return Err(Error::InvalidInput(
                    "the vault already has the maximum number of passphrase slots".to_owned(),
                ));
            }
            let id = Vault::allocate_slot_id(file)?;
            let vault_id = file.vault_id;
            file.slots.push(keys::passphrase_slot(id, now_secs(), &vault_id, root, passphrase, kdf)?.0);
            Ok(id)
        })?;
        self.vault.record_slot_event(SecurityEventKind::SlotAdded, id, "")?;
        Ok(id)
    }

    /// Adds a key-wrapper slot.
    pub fn add_wrapper(&mut self, wrapper: &dyn KeyWrapper) -> Result<SlotId> {
        let id = self.vault.change_slots(|file, root| {
            let id = Vault::allocate_slot_id(file)?;
            let vault_id = file.vault_id;
            file.slots.push(keys::wrapper_slot(id, now_secs(), &vault_id, root, wrapper)?.0);
            Ok(id)
        })?;
        self.vault.record_slot_event(SecurityEventKind::SlotAdded, id, "")?;
        Ok(id)
    }

    /// Replaces the passphrase of passphrase slot `id` (new salt, same slot number).
    pub fn change_passphrase(&mut self, id: SlotId, new: &Passphrase, kdf: KdfParams) -> Result<()> {
        self.vault.replace_slot(id, |slot_id, vault_id, root, info| match info {
            SlotMethod::Passphrase { .. } => keys::passphrase_slot(slot_id, now_secs(), vault_id, root, new, kdf),
            SlotMethod::KeyWrapper { .. } => {
                Err(Error::InvalidInput(format!("key slot {id} is not a passphrase slot")))
            }
        })?;
        self.vault.record_slot_event(SecurityEventKind::SlotChanged, id, "new passphrase")
    }

    /// Re-wraps key-wrapper slot `id` with `new_wrapper` (a rotated platform key): the slot
    /// gets a fresh KEK wrapped by the new key; the root key and all data stay as they are.
    /// The app deletes the old platform key only after this returns.
    pub fn rewrap(&mut self, id: SlotId, new_wrapper: &dyn KeyWrapper) -> Result<()> {
        self.vault.replace_slot(id, |slot_id, vault_id, root, info| match info {
            SlotMethod::KeyWrapper { .. } => keys::wrapper_slot(slot_id, now_secs(), vault_id, root, new_wrapper),
            SlotMethod::Passphrase { .. } => {
                Err(Error::InvalidInput(format!("key slot {id} is not a key-wrapper slot")))
            }
        })?;
        self.vault.record_slot_event(SecurityEventKind::WrapperKeyRotated, id, "")
    }

    /// Re-wraps every slot that `old` opens with `new` (a rotated platform key), in one write of
    /// the slot file. Returns the slots re-wrapped; none is an authentication failure.
    pub fn rotate_wrapper_key(&mut self, old: &dyn KeyWrapper, new: &dyn KeyWrapper) -> Result<Vec<SlotId>> {
        crate::failpoint::hit("wrapper-rotate:before-slots-written");
        let unlocked_by = self.vault.unlocked_by;
        let (ids, unlocking_kek) = self.vault.change_slots(|file, root| {
            let vault_id = file.vault_id;
            let mut ids = Vec::new();
            let mut unlocking_kek = None;
            for i in 0..file.slots.len() {
                let opened = keys::kek_for(file, &file.slots[i], SlotSecret::Wrapper(old))?;
                if opened.is_none_or(|(slot_root, _)| slot_root.expose_secret() != root.expose_secret()) {
                    continue;
                }
                let id = file.slots[i].id;
                let (slot, kek) = keys::wrapper_slot(id, now_secs(), &vault_id, root, new)?;
                file.slots[i] = slot;
                if id == unlocked_by {
                    unlocking_kek = Some(kek);
                }
                ids.push(id);
            }
            if ids.is_empty() {
                return Err(Error::AuthenticationFailed);
            }
            Ok((ids, unlocking_kek))
        })?;
        crate::failpoint::hit("wrapper-rotate:after-slots-written");
        if let Some(kek) = unlocking_kek {
            self.vault.unlock_kek = kek;
        }
        for id in &ids {
            self.vault.record_slot_event(SecurityEventKind::WrapperKeyRotated, *id, "")?;
        }
        Ok(ids)
    }

    /// Removes slot `id`. Refuses to remove the last slot.
    pub fn remove(&mut self, id: SlotId) -> Result<()> {
        self.vault.change_slots(|file, _| {
            let position =
                file.slots.iter().position(|s| s.id == id).ok_or_else(|| Error::NotFound(format!("key slot {id}")))?;
            if file.slots.len() == 1 {
                return Err(Error::LastSlot);
            }
            file.slots.remove(position);
            Ok(())
        })?;
        self.vault.record(SecurityEventKind::SlotRemoved, &format!("slot {id}"))
    }

    /// Rotates the vault root key: a new random root key, the database re-keyed with the new
    /// derived key (`PRAGMA rekey`), and every slot re-sealed under its own KEK. Media files are
    /// untouched (their keys live in the re-keyed database).
    ///
    /// Every slot must be re-sealed, so the secret of every slot other than the one that
    /// unlocked must be in `others`; otherwise nothing changes and the error names the slots
    /// (remove them first if their secrets are lost).
    ///
    /// A backup or recovery handle ([`crate::Backups`], [`crate::Recovery`]) holds connections
    /// under the current key: while one exists the rotation is refused with [`Error::Busy`].
    ///
    /// Crash safety: the re-sealed slots are written to `keyslots.next` first, then the database
    /// is re-keyed (one transaction), then `keyslots.next` replaces `keyslots`. An unlock after a
    /// crash at any point finishes or rolls back (see [`Vault::unlock`]).
    pub fn rotate_root_key(&mut self, others: &[SlotSecret<'_>]) -> Result<()> {
        let vault = &mut *self.vault;
        vault.check_no_long_work()?;
        let _lock = lock_slots(&vault.dir)?;
        let mut file = vault.read_current_slots()?;
        // Each slot's KEK must open that slot, in the file as it is now, to this session's root
        // key: a KEK made stale by another process (a changed passphrase, a re-wrapped slot, a
        // rotation) would re-seal a slot nobody can open.
        let mut keks = Vec::with_capacity(file.slots.len());
        let mut missing = Vec::new();
        for slot in &file.slots {
            let mut kek = None;
            if slot.id == vault.unlocked_by
                && let Some(candidate) = SecretKey::try_from_slice(vault.unlock_kek.expose_secret())
                && keys::opens_to(&file, slot, &candidate, &vault.root)
            {
                kek = Some(candidate);
            }
            for secret in others {
                if kek.is_some() {
                    break;
                }
                kek = keys::kek_for(&file, slot, *secret)?
                    .filter(|(root, _)| root.expose_secret() == vault.root.expose_secret())
                    .map(|(_, kek)| kek);
            }
            match kek {
                Some(kek) => keks.push(kek),
                None => missing.push(slot.id.to_string()),
            }
        }
        if !missing.is_empty() {
            return Err(Error::InvalidInput(format!(
                "key slot(s) {} cannot be re-sealed without their secret: supply it, or remove the slot first",
                missing.join(", ")
            )));
        }
        let new_root = SecretKey::generate().map_err(Error::from_rng)?;
        let vault_id = file.vault_id;
        for (slot, kek) in file.slots.iter_mut().zip(&keks) {
            keys::reseal(slot, &vault_id, kek, &new_root)?;
        }
        let next_path = vault.dir.join(KEYSLOTS_NEXT_FILE);
        fsutil::atomic_write(&next_path, &file.encode(), 0o600).map_err(Error::io("writing the rotated key slots"))?;
        crate::failpoint::hit("rotate:after-next-written");
        let new_key = derive_subkey(&new_root, Purpose::Database);
        // A failed rekey can leave SQLCipher's connection half switched (and a failed commit is
        // not always reported), so the new key is proven on a fresh connection before anything
        // depends on it; on any doubt the old key is proven instead and the journal discarded.
        let rekeyed =
            vault.store.rekey(&new_key).and_then(|()| Store::open(&vault.dir.join(DATABASE_FILE), &new_key, &vault_id));
        let fresh = match rekeyed {
            Ok(fresh) => fresh,
            Err(error) => return Err(vault.recover_from_failed_rekey(error)),
        };
        crate::failpoint::hit("rotate:after-rekey");
        // From here the database is under the new key: the session follows it whatever happens
        // to the rename (if that fails, the journal stays and the next unlock installs it).
        vault.store = fresh;
        vault.root = new_root;
        let installed = fs::rename(&next_path, vault.dir.join(super::KEYSLOTS_FILE))
            .and_then(|()| fsutil::sync_dir(&vault.dir))
            .map_err(Error::io("installing the rotated key slots"));
        vault.slots = file;
        installed?;
        crate::failpoint::hit("rotate:after-install");
        // Best effort: pages under the old key leave the log at this or a later checkpoint.
        let _ = vault.store.checkpoint();
        crate::store::events::record(
            &vault.store.conn,
            store::now_millis(),
            SecurityEventKind::RootKeyRotated,
            &format!("{} slots re-sealed", keks.len()),
        )
    }
}
