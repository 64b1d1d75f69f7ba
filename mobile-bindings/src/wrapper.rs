//! The platform key wrapper as a foreign trait: the app implements it over Android Keystore /
//! StrongBox, the iOS Secure Enclave, or a biometric-gated key.

use std::sync::Arc;

use vault_core::{KeyWrapper, SecretBytes, WrapperDescriptor, WrapperError};

use crate::error::KeyWrapperError;

/// Wraps and unwraps a random per-slot key with a key the platform keeps (never the vault root
/// key). Calls may block to show a biometric prompt.
#[uniffi::export(with_foreign)]
pub trait PlatformKeyWrapper: Send + Sync {
    /// Encrypts `plaintext` under the platform key.
    fn wrap(&self, plaintext: Vec<u8>) -> Result<Vec<u8>, KeyWrapperError>;
    /// Decrypts bytes `wrap` produced.
    fn unwrap(&self, wrapped: Vec<u8>) -> Result<Vec<u8>, KeyWrapperError>;
    /// A short, stable, non-secret label, e.g. `android-strongbox`.
    fn label(&self) -> String;
    /// Whether the key lives in hardware the OS cannot read out.
    fn hardware_backed(&self) -> bool;
}

/// Adapts an app's wrapper to vault-core's trait.
pub(crate) struct ForeignWrapper(pub(crate) Arc<dyn PlatformKeyWrapper>);

impl KeyWrapper for ForeignWrapper {
    fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, WrapperError> {
        self.0.wrap(plaintext.to_vec()).map_err(Into::into)
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<SecretBytes, WrapperError> {
        self.0.unwrap(wrapped.to_vec()).map(SecretBytes::new).map_err(Into::into)
    }

    fn descriptor(&self) -> WrapperDescriptor {
        WrapperDescriptor { label: self.0.label(), hardware_backed: self.0.hardware_backed() }
    }
}
