//! The software device-key file ([`SoftwareKeyWrapper`]) as a slot: unlocking with it (finishing
//! an interrupted key-file rotation) and rotating it. The rotation protocol is crash-safe: the
//! next key is written beside the current one, the slots are re-wrapped under it, then it
//! replaces the current key; an unlock that needed the next key completes the replacement.

use std::path::Path;

use super::Vault;
use crate::error::{Error, Result};
use crate::keys::slot_file::SlotId;
use crate::keys::wrapper::SoftwareKeyWrapper;

impl Vault {
    /// Unlocks with the software key file at `key_file`, and returns the wrapper to use for
    /// further slot operations. If an earlier rotation of the key file was interrupted after the
    /// slots were re-wrapped, the unlock succeeds with the next key and the rotation is
    /// completed here.
    pub fn unlock_with_key_file(dir: &Path, key_file: &Path) -> Result<(Vault, SoftwareKeyWrapper)> {
        let wrapper = SoftwareKeyWrapper::open(key_file).map_err(Error::KeyWrapper)?;
        let vault = Vault::unlock_with_wrapper(dir, &wrapper)?;
        if !wrapper.unwrapped_with_pending_key() {
            return Ok((vault, wrapper));
        }
        SoftwareKeyWrapper::complete_rotation(key_file).map_err(Error::KeyWrapper)?;
        let wrapper = SoftwareKeyWrapper::open(key_file).map_err(Error::KeyWrapper)?;
        Ok((vault, wrapper))
    }

    /// Rotates the software key file at `key_file` (whose current key is `current`): a new key,
    /// every slot of the old one re-wrapped, then the new key installed. Returns the slots
    /// re-wrapped. A crash at any point leaves a vault that [`Vault::unlock_with_key_file`]
    /// opens and finishes.
    pub fn rotate_key_file(&mut self, key_file: &Path, current: &SoftwareKeyWrapper) -> Result<Vec<SlotId>> {
        let next = SoftwareKeyWrapper::prepare_rotation(key_file).map_err(Error::KeyWrapper)?;
        let ids = self.keys().rotate_wrapper_key(current, &next)?;
        SoftwareKeyWrapper::complete_rotation(key_file).map_err(Error::KeyWrapper)?;
        Ok(ids)
    }
}
