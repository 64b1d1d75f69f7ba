//! Argon2id (RFC 9106, version 0x13) passphrase key derivation with bounded parameters.

use argon2::{Algorithm, Argon2, Params, Version};

use crate::secret::{Passphrase, SecretKey};

/// Argon2id cost parameters, stored next to the salt of every passphrase slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes over memory.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
}

/// Why a set of KDF parameters was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KdfParamsError {
    /// A parameter is outside the accepted range.
    #[error("{name} = {value} is outside the accepted range {min}..={max}")]
    OutOfRange {
        /// Which parameter.
        name: &'static str,
        /// The refused value.
        value: u32,
        /// Smallest accepted value.
        min: u32,
        /// Largest accepted value.
        max: u32,
    },
}

impl KdfParams {
    /// The default for new passphrase slots: 64 MiB, 3 passes, 4 lanes.
    pub const DEFAULT: KdfParams = KdfParams { memory_kib: 64 * 1024, iterations: 3, parallelism: 4 };
    /// Smallest memory cost accepted (8 MiB), from a caller or from a file.
    pub const MIN_MEMORY_KIB: u32 = 8 * 1024;
    /// Largest memory cost accepted (2 GiB): a hostile file cannot make unlock allocate more.
    pub const MAX_MEMORY_KIB: u32 = 2 * 1024 * 1024;
    /// Largest number of passes accepted.
    pub const MAX_ITERATIONS: u32 = 32;
    /// Largest degree of parallelism accepted.
    pub const MAX_PARALLELISM: u32 = 16;

    /// Checks every parameter against the bounds above.
    pub fn validate(&self) -> Result<(), KdfParamsError> {
        check("memory_kib", self.memory_kib, Self::MIN_MEMORY_KIB, Self::MAX_MEMORY_KIB)?;
        check("iterations", self.iterations, 1, Self::MAX_ITERATIONS)?;
        check("parallelism", self.parallelism, 1, Self::MAX_PARALLELISM)?;
        Ok(())
    }
}

fn check(name: &'static str, value: u32, min: u32, max: u32) -> Result<(), KdfParamsError> {
    if (min..=max).contains(&value) { Ok(()) } else { Err(KdfParamsError::OutOfRange { name, value, min, max }) }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a derivation failed (never because of a wrong passphrase: Argon2 has no such notion).
#[derive(Debug, thiserror::Error)]
pub(crate) enum KdfError {
    #[error(transparent)]
    Params(#[from] KdfParamsError),
    #[error("argon2: {0}")]
    Argon2(argon2::Error),
}

/// Derives a key-encryption key from a passphrase with Argon2id.
pub(crate) fn derive_from_passphrase(
    passphrase: &Passphrase,
    salt: &[u8],
    params: &KdfParams,
) -> Result<SecretKey, KdfError> {
    let mut key = SecretKey::zeroed();
    argon2id(passphrase.expose_secret().as_bytes(), salt, &[], &[], params, key.expose_secret_mut())?;
    Ok(key)
}

/// Raw Argon2id with the optional secret and associated data of RFC 9106.
pub(crate) fn argon2id(
    password: &[u8],
    salt: &[u8],
    secret: &[u8],
    associated_data: &[u8],
    params: &KdfParams,
    out: &mut [u8],
) -> Result<(), KdfError> {
    params.validate()?;
    argon2id_unchecked(password, salt, secret, associated_data, params, out)
}

/// Argon2id without this crate's bounds, so RFC 9106's tiny test vector can run.
fn argon2id_unchecked(
    password: &[u8],
    salt: &[u8],
    secret: &[u8],
    associated_data: &[u8],
    params: &KdfParams,
    out: &mut [u8],
) -> Result<(), KdfError> {
    let mut builder = argon2::ParamsBuilder::new();
    builder.m_cost(params.memory_kib).t_cost(params.iterations).p_cost(params.parallelism).output_len(out.len());
    if !associated_data.is_empty() {
        let data = argon2::AssociatedData::new(associated_data).map_err(KdfError::Argon2)?;
        builder.data(data);
    }
    let argon_params: Params = builder.build().map_err(KdfError::Argon2)?;
    let hasher = if secret.is_empty() {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params)
    } else {
        Argon2::new_with_secret(secret, Algorithm::Argon2id, Version::V0x13, argon_params).map_err(KdfError::Argon2)?
    };
    hasher.hash_password_into(password, salt, out).map_err(KdfError::Argon2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        password_hex: String,
        salt_hex: String,
        secret_hex: String,
        associated_data_hex: String,
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        tag_hex: String,
    }

    fn vectors() -> Vec<Vector> {
        let text = include_str!("../../tests/vectors/argon2id.json");
        serde_json::from_str(text).unwrap_or_default()
    }

    /// RFC 9106 §5.3 and the reference implementation's Argon2id vectors, from a data file.
    #[test]
    fn argon2id_known_answers() {
        let vectors = vectors();
        assert!(vectors.len() >= 2, "vector file must parse");
        for v in vectors {
            let params = KdfParams { memory_kib: v.memory_kib, iterations: v.iterations, parallelism: v.parallelism };
            let tag = hex::decode(&v.tag_hex).unwrap_or_default();
            let mut out = vec![0u8; tag.len()];
            let result = argon2id_unchecked(
                &hex::decode(&v.password_hex).unwrap_or_default(),
                &hex::decode(&v.salt_hex).unwrap_or_default(),
                &hex::decode(&v.secret_hex).unwrap_or_default(),
                &hex::decode(&v.associated_data_hex).unwrap_or_default(),
                &params,
                &mut out,
            );
            assert!(result.is_ok(), "{}", v.name);
            assert_eq!(hex::encode(&out), v.tag_hex, "{}", v.name);
        }
    }

    #[test]
    fn hostile_parameters_are_refused_before_any_work() {
        let pass = Passphrase::new("p".to_owned());
        for params in [
            KdfParams { memory_kib: u32::MAX, ..KdfParams::DEFAULT },
            KdfParams { memory_kib: 1, ..KdfParams::DEFAULT },
            KdfParams { iterations: 0, ..KdfParams::DEFAULT },
            KdfParams { iterations: 1_000_000, ..KdfParams::DEFAULT },
            KdfParams { parallelism: 0, ..KdfParams::DEFAULT },
            KdfParams { parallelism: 255, ..KdfParams::DEFAULT },
        ] {
            let result = derive_from_passphrase(&pass, &[0; 16], &params);
            assert!(matches!(result, Err(KdfError::Params(_))), "{params:?}");
        }
    }

    #[test]
    fn derivation_depends_on_passphrase_and_salt() {
        let params = KdfParams { memory_kib: KdfParams::MIN_MEMORY_KIB, iterations: 1, parallelism: 1 };
        let derive = |p: &str, salt: &[u8]| {
            derive_from_passphrase(&Passphrase::new(p.to_owned()), salt, &params).map(|k| *k.expose_secret()).ok()
        };
        let base = derive("a", &[1; 16]);
        assert!(base.is_some());
        assert_eq!(base, derive("a", &[1; 16]));
        assert_ne!(base, derive("b", &[1; 16]));
        assert_ne!(base, derive("a", &[2; 16]));
    }
}
