//! The OPAQUE cipher suite and its key-stretching parameters.
//!
//! Ristretto255 for the OPRF and the key exchange group, TripleDH with SHA-512, and Argon2id as the
//! key-stretching function (KSF). The KSF runs only on the client; its parameters are chosen at
//! registration, stored by the server next to the account's record and returned at login start so
//! the client can stretch with the same parameters. The server never runs the KSF, so its cost per
//! login does not depend on these parameters.

use serde::{Deserialize, Serialize};

/// The OPAQUE cipher suite used by every client and server of this API.
#[derive(Debug, Clone, Copy)]
pub struct OpaqueSuite;

impl opaque_ke::CipherSuite for OpaqueSuite {
    type OprfCs = opaque_ke::Ristretto255;
    type KeyExchange = opaque_ke::TripleDh<opaque_ke::Ristretto255, sha2_10::Sha512>;
    type Ksf = argon2_05::Argon2<'static>;
}

/// The OPAQUE context string both sides bind into the key exchange (domain separation).
pub const OPAQUE_CONTEXT: &[u8] = b"vault-backup OPAQUE v1";

/// Versioned Argon2id parameters for the OPAQUE key-stretching function.
///
/// Version 1 is Argon2id (RFC 9106), version 0x13, with the memory, passes and lanes below. Bounds
/// are checked by both sides, so a hostile server cannot make a client allocate without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KsfParams {
    /// Parameter-set version; only 1 exists.
    pub version: u16,
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub passes: u32,
    /// Degree of parallelism.
    pub lanes: u32,
}

/// Why a [`KsfParams`] value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported key-stretching parameters: {0}")]
pub struct KsfParamsError(&'static str);

impl KsfParams {
    /// Smallest accepted memory cost (8 MiB).
    pub const MIN_MEMORY_KIB: u32 = 8 * 1024;
    /// Largest accepted memory cost (1 GiB).
    pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
    /// Largest accepted number of passes.
    pub const MAX_PASSES: u32 = 16;
    /// Largest accepted number of lanes.
    pub const MAX_LANES: u32 = 8;

    /// The parameters new registrations use: 64 MiB, 3 passes, 1 lane (RFC 9106's second
    /// recommended option, with one lane because phones stretch on one core).
    pub const fn recommended() -> Self {
        Self { version: 1, memory_kib: 64 * 1024, passes: 3, lanes: 1 }
    }

    /// Version-1 parameters with the given costs, checked against the bounds.
    pub fn new(memory_kib: u32, passes: u32, lanes: u32) -> Result<Self, KsfParamsError> {
        let params = Self { version: 1, memory_kib, passes, lanes };
        params.validate()?;
        Ok(params)
    }

    /// Checks the version and every cost against the bounds.
    pub fn validate(&self) -> Result<(), KsfParamsError> {
        if self.version != 1 {
            return Err(KsfParamsError("unknown version"));
        }
        if !(Self::MIN_MEMORY_KIB..=Self::MAX_MEMORY_KIB).contains(&self.memory_kib) {
            return Err(KsfParamsError("memory cost out of bounds"));
        }
        if !(1..=Self::MAX_PASSES).contains(&self.passes) {
            return Err(KsfParamsError("passes out of bounds"));
        }
        if !(1..=Self::MAX_LANES).contains(&self.lanes) {
            return Err(KsfParamsError("lanes out of bounds"));
        }
        Ok(())
    }

    /// The Argon2id instance these parameters describe, after validation.
    pub fn argon2(&self) -> Result<argon2_05::Argon2<'static>, KsfParamsError> {
        self.validate()?;
        let params = argon2_05::Params::new(self.memory_kib, self.passes, self.lanes, None)
            .map_err(|_| KsfParamsError("rejected by Argon2"))?;
        Ok(argon2_05::Argon2::new(argon2_05::Algorithm::Argon2id, argon2_05::Version::V0x13, params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recommended_parameters_are_valid() {
        assert!(KsfParams::recommended().validate().is_ok());
        assert!(KsfParams::recommended().argon2().is_ok());
    }

    #[test]
    fn out_of_bounds_parameters_are_refused() {
        assert!(KsfParams::new(KsfParams::MIN_MEMORY_KIB - 1, 1, 1).is_err());
        assert!(KsfParams::new(KsfParams::MAX_MEMORY_KIB + 1, 1, 1).is_err());
        assert!(KsfParams::new(KsfParams::MIN_MEMORY_KIB, 0, 1).is_err());
        assert!(KsfParams::new(KsfParams::MIN_MEMORY_KIB, 1, 0).is_err());
        assert!(KsfParams::new(KsfParams::MIN_MEMORY_KIB, 1, KsfParams::MAX_LANES + 1).is_err());
        let unknown = KsfParams { version: 2, ..KsfParams::recommended() };
        assert!(unknown.validate().is_err());
    }
}
