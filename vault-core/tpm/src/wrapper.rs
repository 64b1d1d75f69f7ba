//! [`TpmKeyWrapper`]: seals a slot's KEK to the TPM, under a storage key of the owner hierarchy.
//!
//! Each `wrap` and `unwrap` opens its own connection to the TPM (through the TCTI), recreates or
//! looks up the parent, does its work in salted sessions with parameter encryption (so the KEK
//! and the PIN do not cross the bus in the clear), flushes every transient object and session
//! it made, and closes the connection: nothing stays loaded in the TPM, and another program can
//! use a TPM that accepts one connection at a time (a simulator, `/dev/tpm0`) in between.

use std::str::FromStr;

use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::constants::{PropertyTag, SessionType, StartupType};
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle, SessionHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Auth, Digest, EccPoint, KeyedHashScheme, PcrSelectionList, PcrSelectionListBuilder, PcrSlot, Private, Public,
    PublicBuilder, PublicEccParametersBuilder, PublicKeyedHashParameters, SensitiveData, SymmetricDefinition,
    SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::{Context, Error as TssError};
use unicode_normalization::UnicodeNormalization;
use vault_core::{KeyWrapper, SecretBytes, WrapperDescriptor, WrapperError};
use zeroize::Zeroizing;

use crate::blob::{Parent, PcrSelection, TpmBlob};
use crate::{DEFAULT_DEVICES, TPM_LABEL_PREFIX};

/// Why the TPM could not be used. The texts name the TCTI (a device path or a loopback address)
/// and TPM response codes, never a PIN or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TpmError {
    /// No TPM answers at this TCTI (no device node, no simulator listening).
    #[error("no TPM found at {tcti} (set TPM2TOOLS_TCTI or TSS2_TCTI, e.g. device:/dev/tpmrm0)")]
    NoTpm {
        /// The TCTI that was tried.
        tcti: String,
    },
    /// The TCTI string does not parse.
    #[error("invalid TCTI {0:?} (expected device:PATH, swtpm:host=H,port=P, mssim:… or tabrmd:…)")]
    BadTcti(String),
    /// The PIN is not acceptable.
    #[error("invalid TPM PIN: {0}")]
    BadPin(&'static str),
    /// The sealed key needs a PIN and none was given.
    #[error("this TPM key is protected by a PIN, and none was given")]
    PinNeeded,
    /// The PIN is wrong (the TPM counted a failure towards its lockout).
    #[error("wrong TPM PIN")]
    WrongPin,
    /// The TPM is in dictionary-attack lockout.
    #[error("the TPM is locked out after too many wrong PINs; {}", retry_text(*retry_after_secs))]
    LockedOut {
        /// The TPM's recovery interval: one failure is forgotten every this many seconds.
        retry_after_secs: Option<u64>,
    },
    /// The key's parent is not this TPM's: the TPM was cleared, or this is another TPM.
    #[error("the TPM key is unusable: this TPM was cleared or is not the one the key was made on")]
    ParentChanged,
    /// The PCRs the key is sealed to have other values now.
    #[error("the TPM key is unusable: the PCR values it is sealed to have changed")]
    PcrChanged,
    /// The wrapped bytes do not parse or the TPM refused them as damaged.
    #[error("the TPM wrapped key is damaged")]
    Damaged,
    /// Any other TPM or TSS failure, with the TSS's description of the response code.
    #[error("TPM {step} failed: {detail}")]
    Tpm {
        /// What was being done.
        step: &'static str,
        /// The TSS's text for the response code.
        detail: String,
    },
}

fn retry_text(secs: Option<u64>) -> String {
    match secs {
        Some(secs) => format!("retry in {secs} s or use another slot"),
        None => "retry later or use another slot".to_owned(),
    }
}

impl From<TpmError> for WrapperError {
    fn from(e: TpmError) -> Self {
        match e {
            TpmError::NoTpm { .. } => WrapperError::Unavailable,
            TpmError::WrongPin | TpmError::Damaged => WrapperError::Rejected,
            TpmError::LockedOut { retry_after_secs } => WrapperError::LockedOut { retry_after_secs },
            TpmError::ParentChanged | TpmError::PcrChanged => WrapperError::KeyInvalidated,
            other => WrapperError::Other(other.to_string()),
        }
    }
}

/// The TPM auth value of a sealed key: the user's PIN, normalised to Unicode NFC, 1..=32 bytes of
/// UTF-8 (the size of a SHA-256 digest, the TPM's limit for this object), without NUL. Zeroized
/// on drop; `Debug` is redacted.
pub struct TpmPin(Zeroizing<String>);

impl TpmPin {
    /// The most bytes a PIN may have.
    pub const MAX_LEN: usize = 32;

    /// Normalises `pin` to NFC (the caller's string is zeroized) and checks its length.
    pub fn new(pin: String) -> Result<Self, TpmError> {
        let pin = Zeroizing::new(pin);
        let normalised = Zeroizing::new(pin.nfc().collect::<String>());
        if normalised.is_empty() {
            return Err(TpmError::BadPin("it is empty"));
        }
        if normalised.len() > Self::MAX_LEN {
            return Err(TpmError::BadPin("it is longer than 32 bytes"));
        }
        if normalised.contains('\0') {
            return Err(TpmError::BadPin("it contains a NUL character"));
        }
        Ok(Self(normalised))
    }

    fn auth(&self) -> Result<Auth, TpmError> {
        Auth::try_from(self.0.as_bytes().to_vec()).map_err(|_| TpmError::BadPin("it does not fit the TPM"))
    }
}

impl std::fmt::Debug for TpmPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TpmPin([REDACTED])")
    }
}

/// Where the TPM is and how new keys are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmConfig {
    /// The TCTI: `device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, `tabrmd:` …
    pub tcti: String,
    /// The parent of new keys.
    pub parent: Parent,
    /// PCRs (SHA-256 bank) new keys are sealed to; `None` (the default) seals to none.
    pub pcrs: Option<PcrSelection>,
}

impl TpmConfig {
    /// The TCTI from the environment (see [`crate::tcti_from_env`]), the owner hierarchy's
    /// storage primary key as parent, no PCR policy.
    pub fn from_env() -> Result<Self, TpmError> {
        let tcti = crate::tcti_from_env().ok_or_else(|| TpmError::NoTpm {
            tcti: DEFAULT_DEVICES.iter().map(|d| format!("device:{d}")).collect::<Vec<_>>().join(" or "),
        })?;
        Ok(Self::with_tcti(tcti))
    }

    /// This TCTI, the storage primary key as parent, no PCR policy.
    pub fn with_tcti(tcti: impl Into<String>) -> Self {
        Self { tcti: tcti.into(), parent: Parent::Srk, pcrs: None }
    }
}

/// A [`KeyWrapper`] over a TPM 2.0: `wrap` seals the KEK in a TPM object under the owner
/// hierarchy's storage key, `unwrap` loads and unseals it. The sealed object is `fixedTPM` and
/// `fixedParent`: it unseals on this TPM only, and not after the TPM is cleared. With a PIN, the
/// PIN is the object's auth value and wrong PINs count towards the TPM's dictionary-attack
/// lockout; without one, the object is exempt from it (`noDA`). With PCRs, the object unseals only
/// while those PCRs hold the values they had when it was made.
///
/// The label is `tpm2-` and the TPM's manufacturer id (such as `tpm2-IFX`, `tpm2-IBM`), or `tpm2`
/// when the TPM gives none, and the wrapper reports itself hardware-backed: a TPM keeps its
/// storage key inside. A software TPM (swtpm) looks the same from here; telling them apart needs
/// an attestation of the endorsement key, which this wrapper does not do.
pub struct TpmKeyWrapper {
    config: TpmConfig,
    pin: Option<TpmPin>,
    manufacturer: Option<String>,
}

impl std::fmt::Debug for TpmKeyWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmKeyWrapper")
            .field("config", &self.config)
            .field("pin", &self.pin.is_some())
            .field("manufacturer", &self.manufacturer)
            .finish()
    }
}

impl TpmKeyWrapper {
    /// Connects to the TPM once to check that it answers and to read its manufacturer.
    pub fn open(config: TpmConfig, pin: Option<TpmPin>) -> Result<Self, TpmError> {
        let mut ctx = connect(&config.tcti)?;
        let manufacturer = ctx
            .get_tpm_property(PropertyTag::Manufacturer)
            .map_err(|e| tpm_error("reading the manufacturer", e))?
            .and_then(manufacturer_id);
        Ok(Self { config, pin, manufacturer })
    }

    /// The TPM's manufacturer id (TPM_PT_MANUFACTURER, such as `IFX`, `INTC`, `IBM`), if any.
    pub fn manufacturer(&self) -> Option<&str> {
        self.manufacturer.as_deref()
    }

    /// Seals `secret` as [`KeyWrapper::wrap`] does, with the detailed error.
    pub fn seal(&self, secret: &[u8]) -> Result<Vec<u8>, TpmError> {
        let mut ctx = connect(&self.config.tcti)?;
        let mut scope = Scope::default();
        let result = self.seal_in(&mut ctx, &mut scope, secret);
        scope.flush(&mut ctx);
        result
    }

    /// Unseals a blob as [`KeyWrapper::unwrap`] does, with the detailed error.
    pub fn unseal(&self, wrapped: &[u8]) -> Result<SecretBytes, TpmError> {
        let blob = TpmBlob::parse(wrapped).map_err(|_| TpmError::Damaged)?;
        if blob.pin && self.pin.is_none() {
            return Err(TpmError::PinNeeded);
        }
        let mut ctx = connect(&self.config.tcti)?;
        let mut scope = Scope::default();
        let result = self.unseal_in(&mut ctx, &mut scope, &blob);
        scope.flush(&mut ctx);
        result.map_err(|e| match e {
            TpmError::LockedOut { .. } => TpmError::LockedOut { retry_after_secs: lockout_interval(&mut ctx) },
            other => other,
        })
    }

    fn seal_in(&self, ctx: &mut Context, scope: &mut Scope, secret: &[u8]) -> Result<Vec<u8>, TpmError> {
        let (parent, parent_name) = load_parent(ctx, scope, self.config.parent)?;
        let session = salted_session(ctx, scope, parent, SessionType::Hmac)?;
        let pin = self.pin.as_ref().map(TpmPin::auth).transpose()?;
        let policy = match &self.config.pcrs {
            Some(pcrs) => {
                let trial = salted_session(ctx, scope, parent, SessionType::Trial)?;
                let trial = policy_session(trial)?;
                ctx.execute_without_session(|ctx| apply_policy(ctx, trial, pcrs, pin.is_some()))?;
                ctx.execute_without_session(|ctx| ctx.policy_get_digest(trial))
                    .map_err(|e| tpm_error("computing the PCR policy", e))?
            }
            None => Digest::default(),
        };
        let public = sealed_object_template(pin.is_some(), self.config.pcrs.is_some(), policy)?;
        let data = SensitiveData::try_from(secret.to_vec()).map_err(|e| tpm_error("sealing", e))?;
        let created = ctx
            .execute_with_session(Some(session), |ctx| ctx.create(parent, public, pin, Some(data), None, None))
            .map_err(|e| tpm_error("creating the sealed key", e))?;
        let blob = TpmBlob {
            pin: self.pin.is_some(),
            parent: self.config.parent,
            parent_name,
            pcrs: self.config.pcrs,
            public: created.out_public.marshall().map_err(|e| tpm_error("encoding the sealed key", e))?,
            private: created.out_private.value().to_vec(),
        };
        blob.encode().map_err(|_| TpmError::Tpm { step: "encoding the sealed key", detail: "too large".into() })
    }

    fn unseal_in(&self, ctx: &mut Context, scope: &mut Scope, blob: &TpmBlob) -> Result<SecretBytes, TpmError> {
        let (parent, parent_name) = load_parent(ctx, scope, blob.parent)?;
        if parent_name != blob.parent_name {
            return Err(TpmError::ParentChanged);
        }
        let public = Public::unmarshall(&blob.public).map_err(|_| TpmError::Damaged)?;
        let private = Private::try_from(blob.private.clone()).map_err(|_| TpmError::Damaged)?;
        let session = salted_session(ctx, scope, parent, SessionType::Hmac)?;
        let object =
            ctx.execute_with_session(Some(session), |ctx| ctx.load(parent, private, public)).map_err(
                |e| match kind(&e) {
                    // The parent is the one the key was made under, so a refusal means damage.
                    Some(
                        Tss2ResponseCodeKind::Integrity
                        | Tss2ResponseCodeKind::Value
                        | Tss2ResponseCodeKind::Size
                        | Tss2ResponseCodeKind::Attributes
                        | Tss2ResponseCodeKind::Type
                        | Tss2ResponseCodeKind::Hash
                        | Tss2ResponseCodeKind::Scheme
                        | Tss2ResponseCodeKind::Symmetric
                        | Tss2ResponseCodeKind::Kdf
                        | Tss2ResponseCodeKind::Binding
                        | Tss2ResponseCodeKind::Insufficient
                        | Tss2ResponseCodeKind::KeySize,
                    ) => TpmError::Damaged,
                    _ => tpm_error("loading the sealed key", e),
                },
            )?;
        scope.objects.push(object.into());
        let auth = match (&self.pin, blob.pin) {
            (Some(pin), true) => pin.auth()?,
            _ => Auth::default(),
        };
        ctx.tr_set_auth(object.into(), auth).map_err(|e| tpm_error("setting the PIN", e))?;
        let unseal_session = match &blob.pcrs {
            Some(pcrs) => {
                let session = salted_session(ctx, scope, parent, SessionType::Policy)?;
                let policy = policy_session(session)?;
                ctx.execute_without_session(|ctx| apply_policy(ctx, policy, pcrs, blob.pin))?;
                session
            }
            None => session,
        };
        let data =
            ctx.execute_with_session(Some(unseal_session), |ctx| ctx.unseal(object.into())).map_err(
                |e| match kind(&e) {
                    Some(Tss2ResponseCodeKind::AuthFail | Tss2ResponseCodeKind::BadAuth) => TpmError::WrongPin,
                    Some(Tss2ResponseCodeKind::Lockout) => TpmError::LockedOut { retry_after_secs: None },
                    Some(Tss2ResponseCodeKind::PolicyFail) => TpmError::PcrChanged,
                    _ => tpm_error("unsealing", e),
                },
            )?;
        Ok(SecretBytes::new(data.value().to_vec()))
    }
}

impl KeyWrapper for TpmKeyWrapper {
    fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, WrapperError> {
        self.seal(plaintext).map_err(WrapperError::from)
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<SecretBytes, WrapperError> {
        self.unseal(wrapped).map_err(WrapperError::from)
    }

    fn descriptor(&self) -> WrapperDescriptor {
        let label = match &self.manufacturer {
            Some(id) => format!("{TPM_LABEL_PREFIX}-{id}"),
            None => TPM_LABEL_PREFIX.to_owned(),
        };
        WrapperDescriptor { label, hardware_backed: true }
    }
}

/// Transient objects and sessions made during one operation, flushed at its end whatever happened
/// (a TPM without a resource manager keeps them loaded after the connection closes).
#[derive(Default)]
struct Scope {
    objects: Vec<ObjectHandle>,
}

impl Scope {
    fn flush(&mut self, ctx: &mut Context) {
        for handle in self.objects.drain(..).rev() {
            // Best effort: a session the TPM already ended cannot be flushed again.
            let _ = ctx.execute_without_session(|ctx| ctx.flush_context(handle));
        }
    }
}

/// The TCTI named by the environment, as [`crate::tcti_from_env`] picks it, is opened here.
fn connect(tcti: &str) -> Result<Context, TpmError> {
    let conf = TctiNameConf::from_str(tcti).map_err(|_| TpmError::BadTcti(tcti.to_owned()))?;
    let no_tpm = || TpmError::NoTpm { tcti: tcti.to_owned() };
    if let TctiNameConf::Device(_) = conf {
        let path = tcti.strip_prefix("device:").filter(|p| !p.is_empty()).unwrap_or("/dev/tpm0");
        if !std::path::Path::new(path).exists() {
            return Err(no_tpm());
        }
    }
    let mut ctx = Context::new(conf).map_err(|_| no_tpm())?;
    // A TPM just powered on (a simulator started without its startup flag) needs TPM2_Startup;
    // one that has started refuses a second with TPM_RC_INITIALIZE, which is fine.
    match ctx.get_tpm_property(PropertyTag::Manufacturer) {
        Ok(_) => {}
        Err(e) if kind(&e) == Some(Tss2ResponseCodeKind::Initialize) => {
            let _ = ctx.startup(StartupType::Clear);
        }
        Err(_) => return Err(no_tpm()),
    }
    Ok(ctx)
}

fn kind(e: &TssError) -> Option<Tss2ResponseCodeKind> {
    match e {
        TssError::Tss2Error(rc) => rc.kind(),
        TssError::WrapperError(_) => None,
    }
}

fn tpm_error(step: &'static str, e: TssError) -> TpmError {
    TpmError::Tpm { step, detail: e.to_string() }
}

/// A manufacturer id of printable ASCII letters and digits (spaces and NULs trimmed).
fn manufacturer_id(value: u32) -> Option<String> {
    let id: String = value.to_be_bytes().iter().filter(|b| b.is_ascii_alphanumeric()).map(|&b| char::from(b)).collect();
    (!id.is_empty()).then_some(id)
}

fn lockout_interval(ctx: &mut Context) -> Option<u64> {
    ctx.get_tpm_property(PropertyTag::LockoutInterval).ok().flatten().map(u64::from)
}

/// The TCG's SRK template for ECC (TPM v2.0 Provisioning Guidance): NIST P-256, AES-128-CFB,
/// restricted decryption, no auth policy, empty unique field.
fn srk_template() -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .map_err(|e| tpm_error("building the storage key template", e))?;
    let parameters = PublicEccParametersBuilder::new_restricted_decryption_key(
        SymmetricDefinitionObject::AES_128_CFB,
        EccCurve::NistP256,
    )
    .build()
    .map_err(|e| tpm_error("building the storage key template", e))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(|e| tpm_error("building the storage key template", e))
}

/// A sealed data object: `fixedTPM`, `fixedParent`; `noDA` without a PIN; usable by its auth
/// value only without a PCR policy (with one, only through the policy).
fn sealed_object_template(pin: bool, pcr_policy: bool, policy: Digest) -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(!pin)
        .with_user_with_auth(!pcr_policy)
        .build()
        .map_err(|e| tpm_error("building the sealed key template", e))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(policy)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .map_err(|e| tpm_error("building the sealed key template", e))
}

/// The parent key and its name: the storage primary key made again from the SRK template (the
/// owner hierarchy's auth value must be empty, as it is unless an administrator set one), or a
/// persistent key looked up by handle.
fn load_parent(ctx: &mut Context, scope: &mut Scope, parent: Parent) -> Result<(KeyHandle, Vec<u8>), TpmError> {
    let handle: KeyHandle = match parent {
        Parent::Srk => {
            let template = srk_template()?;
            let primary = ctx
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
                })
                .map_err(|e| match kind(&e) {
                    Some(Tss2ResponseCodeKind::AuthFail | Tss2ResponseCodeKind::BadAuth) => TpmError::Tpm {
                        step: "creating the storage key",
                        detail: "the owner hierarchy has a password; persist a storage key and use it as parent".into(),
                    },
                    _ => tpm_error("creating the storage key", e),
                })?;
            scope.objects.push(primary.key_handle.into());
            primary.key_handle
        }
        Parent::Persistent(raw) => {
            let tpm_handle = PersistentTpmHandle::new(raw).map_err(|_| TpmError::Damaged)?;
            ctx.execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::Persistent(tpm_handle)))
                .map_err(|e| match kind(&e) {
                    Some(Tss2ResponseCodeKind::Handle) => TpmError::ParentChanged,
                    _ => tpm_error("looking up the persistent storage key", e),
                })?
                .into()
        }
    };
    let name = ctx.tr_get_name(handle.into()).map_err(|e| tpm_error("reading the storage key's name", e))?;
    Ok((handle, name.value().to_vec()))
}

/// A session salted with the parent key, with AES-128-CFB parameter encryption both ways.
fn salted_session(
    ctx: &mut Context,
    scope: &mut Scope,
    parent: KeyHandle,
    kind: SessionType,
) -> Result<AuthSession, TpmError> {
    let session = ctx
        .execute_without_session(|ctx| {
            ctx.start_auth_session(
                Some(parent),
                None,
                None,
                kind,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
        })
        .map_err(|e| tpm_error("starting a session", e))?
        .ok_or(TpmError::Tpm { step: "starting a session", detail: "no session returned".into() })?;
    scope.objects.push(SessionHandle::from(session).into());
    if kind != SessionType::Trial {
        let (attributes, mask) =
            SessionAttributesBuilder::new().with_decrypt(true).with_encrypt(true).with_continue_session(true).build();
        ctx.tr_sess_set_attributes(session, attributes, mask).map_err(|e| tpm_error("starting a session", e))?;
    }
    Ok(session)
}

fn policy_session(session: AuthSession) -> Result<PolicySession, TpmError> {
    PolicySession::try_from(session).map_err(|e| tpm_error("starting a policy session", e))
}

fn pcr_list(pcrs: &PcrSelection) -> Result<PcrSelectionList, TpmError> {
    let slots = pcrs
        .pcrs()
        .into_iter()
        .map(|pcr| PcrSlot::try_from(1u32 << pcr))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tpm_error("selecting PCRs", e))?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(|e| tpm_error("selecting PCRs", e))
}

/// The unseal policy: the PCRs' current values, then (with a PIN) the object's auth value.
fn apply_policy(ctx: &mut Context, session: PolicySession, pcrs: &PcrSelection, pin: bool) -> Result<(), TpmError> {
    ctx.policy_pcr(session, Digest::default(), pcr_list(pcrs)?).map_err(|e| tpm_error("applying the PCR policy", e))?;
    if pin {
        ctx.policy_auth_value(session).map_err(|e| tpm_error("applying the PIN policy", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_normalised_and_bounded() {
        assert!(TpmPin::new("1234".into()).is_ok());
        assert_eq!(TpmPin::new(String::new()).err(), Some(TpmError::BadPin("it is empty")));
        assert_eq!(TpmPin::new("x".repeat(33)).err(), Some(TpmError::BadPin("it is longer than 32 bytes")));
        assert_eq!(TpmPin::new("a\0b".into()).err(), Some(TpmError::BadPin("it contains a NUL character")));
        // NFC: "é" as e + combining acute is the same PIN as the precomposed one.
        let composed = TpmPin::new("\u{e9}".into()).unwrap();
        let decomposed = TpmPin::new("e\u{301}".into()).unwrap();
        assert_eq!(composed.0.as_bytes(), decomposed.0.as_bytes());
        assert_eq!(format!("{composed:?}"), "TpmPin([REDACTED])");
    }

    #[test]
    fn manufacturer_ids_are_printable() {
        assert_eq!(manufacturer_id(u32::from_be_bytes(*b"IBM ")), Some("IBM".to_owned()));
        assert_eq!(manufacturer_id(u32::from_be_bytes(*b"IFX\0")), Some("IFX".to_owned()));
        assert_eq!(manufacturer_id(0), None);
    }

    #[test]
    fn errors_map_to_what_the_caller_can_do() {
        assert_eq!(WrapperError::from(TpmError::WrongPin), WrapperError::Rejected);
        assert_eq!(WrapperError::from(TpmError::Damaged), WrapperError::Rejected);
        assert_eq!(WrapperError::from(TpmError::ParentChanged), WrapperError::KeyInvalidated);
        assert_eq!(WrapperError::from(TpmError::PcrChanged), WrapperError::KeyInvalidated);
        assert_eq!(WrapperError::from(TpmError::NoTpm { tcti: "device:/x".into() }), WrapperError::Unavailable);
        assert_eq!(
            WrapperError::from(TpmError::LockedOut { retry_after_secs: Some(7) }),
            WrapperError::LockedOut { retry_after_secs: Some(7) }
        );
        assert!(matches!(WrapperError::from(TpmError::PinNeeded), WrapperError::Other(_)));
    }

    #[test]
    fn a_missing_device_is_no_tpm() {
        let err = TpmKeyWrapper::open(TpmConfig::with_tcti("device:/nonexistent/tpmrm0"), None).err();
        assert_eq!(err, Some(TpmError::NoTpm { tcti: "device:/nonexistent/tpmrm0".into() }));
        let err = TpmKeyWrapper::open(TpmConfig::with_tcti("nonsense"), None).err();
        assert_eq!(err, Some(TpmError::BadTcti("nonsense".into())));
    }
}
