#![no_main]
//! What the backup server parses from a request before trusting it: JSON bodies, the OPAQUE
//! messages inside them, names and identifiers, bearer tokens, and the sealed login and
//! registration state it handed out; plus its own records as read back from storage.
use backup_api::OpaqueSuite;
use backup_api::wire::{
    CreateDeviceRequest, LoginFinishRequest, LoginStartRequest, RegisterFinishRequest, RegisterStartRequest,
};
use backup_server::records::{AccountRecord, Usage};
use backup_server::sealed::{self, Purpose};
use opaque_ke::{CredentialFinalization, CredentialRequest, RegistrationRequest, RegistrationUpload};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<RegisterStartRequest>(data);
    let _ = serde_json::from_slice::<RegisterFinishRequest>(data);
    let _ = serde_json::from_slice::<LoginStartRequest>(data);
    let _ = serde_json::from_slice::<LoginFinishRequest>(data);
    let _ = serde_json::from_slice::<CreateDeviceRequest>(data);
    let _ = RegistrationRequest::<OpaqueSuite>::deserialize(data);
    let _ = RegistrationUpload::<OpaqueSuite>::deserialize(data);
    let _ = CredentialRequest::<OpaqueSuite>::deserialize(data);
    let _ = CredentialFinalization::<OpaqueSuite>::deserialize(data);
    let text = String::from_utf8_lossy(data);
    let _ = backup_api::names::is_valid_account(&text);
    let _ = backup_api::names::is_valid_device_id(&text);
    let _ = backup_api::names::is_valid_object_id(&text);
    let _ = backup_server::tokens::parse(&[3; 32], &text, 1_800_000_000);
    let _ = sealed::open(&[4; 32], Purpose::Login, data, 1_800_000_000);
    let _ = sealed::open(&[4; 32], Purpose::Registration, data, 1_800_000_000);
    let path = object_store::path::Path::from("fuzz");
    let _ = backup_server::records::parse::<AccountRecord>(data, &path);
    let _ = backup_server::records::parse::<Usage>(data, &path);
});
