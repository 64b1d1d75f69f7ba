//! The TPM wrapper against real software TPMs (swtpm): each test starts its own, so lockouts and
//! clears stay within it. Run by scripts/test.sh (`VAULT_TEST_SWTPM`); ignored elsewhere.
#![cfg(feature = "tpm")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;

use test_support::swtpm::Swtpm;
use vault_core::{CreateOptions, Error, KdfParams, KeyWrapper, Passphrase, SlotMethod, Vault, WrapperError};
use vault_tpm::blob::{Parent, PcrSelection, TpmBlob};
use vault_tpm::{TpmConfig, TpmError, TpmKeyWrapper, TpmPin};

const KEK: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

fn wrapper(tpm: &Swtpm, pin: Option<&str>) -> TpmKeyWrapper {
    TpmKeyWrapper::open(TpmConfig::with_tcti(tpm.tcti()), pin.map(|p| TpmPin::new(p.to_owned()).unwrap())).unwrap()
}

fn pcr_wrapper(tpm: &Swtpm, pcrs: &[u8], pin: Option<&str>) -> TpmKeyWrapper {
    let config = TpmConfig { pcrs: Some(PcrSelection::sha256(pcrs).unwrap()), ..TpmConfig::with_tcti(tpm.tcti()) };
    TpmKeyWrapper::open(config, pin.map(|p| TpmPin::new(p.to_owned()).unwrap())).unwrap()
}

/// Runs a tpm2-tools command against `tpm`.
fn tpm2(tpm: &Swtpm, args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).env("TPM2TOOLS_TCTI", tpm.tcti()).status().unwrap();
    assert!(status.success(), "{args:?} failed");
}

#[test]
#[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
fn seals_and_unseals_and_describes_itself() {
    let tpm = Swtpm::start();
    let w = wrapper(&tpm, None);
    assert_eq!(w.manufacturer(), Some("IBM"));
    let d = w.descriptor();
    assert_eq!((d.label.as_str(), d.hardware_backed), ("tpm2-IBM", true));
    let blob = w.wrap(KEK).unwrap();
    assert!(!blob.windows(KEK.len()).any(|win| win == KEK), "the KEK is in the blob in the clear");
    let parsed = TpmBlob::parse(&blob).unwrap();
    assert_eq!((parsed.pin, parsed.parent, parsed.pcrs), (false, Parent::Srk, None));
    assert_eq!(parsed.parent_name.len(), 34, "a SHA-256 name");
    assert_eq!(w.unwrap(&blob).unwrap().expose_secret(), KEK);
    // Two seals of one secret differ (fresh seed in the private area), and both open.
    let again = w.wrap(KEK).unwrap();
    assert_ne!(again, blob);
    assert_eq!(w.unwrap(&again).unwrap().expose_secret(), KEK);
    // Nothing stays loaded: many operations do not exhaust the TPM's few object slots.
    for _ in 0..8 {
        assert_eq!(w.unwrap(&blob).unwrap().expose_secret(), KEK);
    }
}

#[test]
#[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
fn tampered_blobs_are_rejected() {
    let tpm = Swtpm::start();
    let w = wrapper(&tpm, None);
    let blob = w.wrap(KEK).unwrap();
    let parsed = TpmBlob::parse(&blob).unwrap();
    // A flipped byte in the private area fails the TPM's integrity check.
    let mut private = parsed.clone();
    let last = private.private.len() - 1;
    private.private[last] ^= 1;
    assert_eq!(w.unwrap(&private.encode().unwrap()).err(), Some(WrapperError::Rejected));
    // A flipped bit in the public area changes the object's name, which the private area binds.
    let mut public = parsed.clone();
    let last = public.public.len() - 1;
    public.public[last] ^= 1;
    assert_eq!(w.unwrap(&public.encode().unwrap()).err(), Some(WrapperError::Rejected));
    assert_eq!(w.unwrap(b"not a blob").err(), Some(WrapperError::Rejected));
    assert_eq!(w.unwrap(&blob).unwrap().expose_secret(), KEK);
}

#[test]
#[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
fn a_blob_does_not_unseal_on_another_tpm() {
    let (a, b) = (Swtpm::start(), Swtpm::start());
    let blob = wrapper(&a, None).wrap(KEK).unwrap();
    let on_b = wrapper(&b, None);
    assert_eq!(on_b.unseal(&blob).err(), Some(TpmError::ParentChanged));
    assert_eq!(on_b.unwrap(&blob).err(), Some(WrapperError::KeyInvalidated));
    // Even told to skip the parent check (a forged parent name), B's storage key cannot load it.
    let mut forged = TpmBlob::parse(&blob).unwrap();
    forged.parent_name = TpmBlob::parse(&on_b.wrap(KEK).unwrap()).unwrap().parent_name;
    assert!(on_b.unwrap(&forged.encode().unwrap()).is_err());
}

#[test]
#[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
fn a_cleared_tpm_makes_the_key_unusable() {
    let tpm = Swtpm::start();
    let blob = wrapper(&tpm, None).wrap(KEK).unwrap();
    // TPM2_Clear through the platform hierarchy (swtpm's platform auth is empty).
    tpm2(&tpm, &["tpm2_clear", "-c", "p"]);
    assert_eq!(wrapper(&tpm, None).unseal(&blob).err(), Some(TpmError::ParentChanged));
}

#[test]
#[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
fn wrong_pins_are_rejected_then_the_tpm_locks_out() {
    let tpm = Swtpm::start();
    let blob = wrapper(&tpm, Some("2468")).wrap(KEK).unwrap();
    assert!(TpmBlob::parse(&blob).unwrap().pin);
    assert_eq!(wrapper(&tpm, Some("2468")).unwrap(&blob).unwrap().expose_secret(), KEK);
    assert_eq!(wrapper(&tpm, None).unseal(&blob).err(), Some(TpmError::PinNeeded));
    let wrong = wrapper(&tpm, Some("1357"));
    // swtpm's TPM allows 3 failures (TPM_PT_MAX_AUTH_FAIL) before its lockout.
    for _ in 0..3 {
        assert_eq!(wrong.unseal(&blob).err(), Some(TpmError::WrongPin));
    }
    let locked = wrong.unwrap(&blob).err();
    assert_eq!(locked, Some(WrapperError::LockedOut { retry_after_secs: Some(1000) }));
    // In lockout, the right PIN is refused too ...
    assert!(matches!(wrapper(&tpm, Some("2468")).unseal(&blob), Err(TpmError::LockedOut { .. })));
    // ... but a key without a PIN (noDA) still unseals.
    let free = wrapper(&tpm, None);
    let free_blob = free.wrap(KEK).unwrap();
    assert_eq!(free.unwrap(&free_blob).unwrap().expose_secret(), KEK);
    // The owner of the lockout authorisation can reset it.
    tpm2(&tpm, &["tpm2_dictionarylockout", "--clear-lockout"]);
    assert_eq!(wrapper(&tpm, Some("2468")).unwrap(&blob).unwrap().expose_secret(), KEK);
}

#[test]
#[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
fn a_pcr_policy_holds_while_the_pcrs_do() {
    let tpm = Swtpm::start();
    // PCR 16 is the debug PCR: extendable and resettable from software.
    let w = pcr_wrapper(&tpm, &[16], None);
    let blob = w.wrap(KEK).unwrap();
    assert_eq!(TpmBlob::parse(&blob).unwrap().pcrs.map(|p| p.pcrs()), Some(vec![16]));
    assert_eq!(w.unwrap(&blob).unwrap().expose_secret(), KEK);
    let with_pin = pcr_wrapper(&tpm, &[16], Some("1111"));
    let pin_blob = with_pin.wrap(KEK).unwrap();
    assert_eq!(with_pin.unwrap(&pin_blob).unwrap().expose_secret(), KEK);
    assert_eq!(pcr_wrapper(&tpm, &[16], Some("2222")).unseal(&pin_blob).err(), Some(TpmError::WrongPin));
    tpm2(&tpm, &["tpm2_pcrextend", "16:sha256=0000000000000000000000000000000000000000000000000000000000000001"]);
    assert_eq!(w.unseal(&blob).err(), Some(TpmError::PcrChanged));
    assert_eq!(w.unwrap(&blob).err(), Some(WrapperError::KeyInvalidated));
    // Back to the sealed values, it unseals again.
    tpm2(&tpm, &["tpm2_pcrreset", "16"]);
    assert_eq!(w.unwrap(&blob).unwrap().expose_secret(), KEK);
}

#[test]
#[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
fn a_persistent_parent_is_used_and_checked() {
    let tpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("srk.ctx");
    let ctx = ctx.to_str().unwrap();
    tpm2(&tpm, &["tpm2_createprimary", "-C", "o", "-g", "sha256", "-G", "ecc256:aes128cfb", "-c", ctx, "-Q"]);
    tpm2(&tpm, &["tpm2_evictcontrol", "-C", "o", "-c", ctx, "0x81000001", "-Q"]);
    // Without a resource manager, tpm2-tools leaves its transient copies loaded.
    tpm2(&tpm, &["tpm2_flushcontext", "-t"]);
    let config = TpmConfig { parent: Parent::Persistent(0x8100_0001), ..TpmConfig::with_tcti(tpm.tcti()) };
    let w = TpmKeyWrapper::open(config, None).unwrap();
    let blob = w.wrap(KEK).unwrap();
    assert_eq!(TpmBlob::parse(&blob).unwrap().parent, Parent::Persistent(0x8100_0001));
    assert_eq!(w.unwrap(&blob).unwrap().expose_secret(), KEK);
    // The persistent key removed: unusable, not damaged.
    tpm2(&tpm, &["tpm2_evictcontrol", "-C", "o", "-c", "0x81000001", "-Q"]);
    assert_eq!(w.unseal(&blob).err(), Some(TpmError::ParentChanged));
}

#[test]
#[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
fn a_vault_opens_through_its_tpm_slot() {
    let tpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let vault_dir = dir.path().join("v");
    let w = wrapper(&tpm, Some("0000"));
    let kdf = KdfParams { memory_kib: KdfParams::MIN_MEMORY_KIB, iterations: 1, parallelism: 1 };
    let pass = Passphrase::new("correct horse".to_owned());
    let vault = Vault::create(&vault_dir, &pass, CreateOptions { kdf, wrapper: Some(&w) }).unwrap();
    drop(vault);
    let mut vault = Vault::unlock_with_wrapper(&vault_dir, &w).unwrap();
    let slots = vault.keys().list();
    assert!(slots.iter().any(|s| matches!(
        &s.method,
        SlotMethod::KeyWrapper { label, hardware_backed: true } if label == "tpm2-IBM"
    )));
    drop(vault);
    let wrong = wrapper(&tpm, Some("9999"));
    assert!(matches!(Vault::unlock_with_wrapper(&vault_dir, &wrong), Err(Error::AuthenticationFailed)));
    assert!(Vault::unlock_with_passphrase(&vault_dir, &pass).is_ok());
}

#[test]
#[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
fn the_tpm_the_environment_names_is_used() {
    // scripts/test.sh starts one swtpm for the run and names it in TPM2TOOLS_TCTI.
    let tcti = std::env::var("TPM2TOOLS_TCTI").expect("TPM2TOOLS_TCTI names the run's swtpm");
    let config = TpmConfig::from_env().unwrap();
    assert_eq!(config.tcti, tcti);
    assert_eq!((config.parent, config.pcrs), (Parent::Srk, None));
    let w = TpmKeyWrapper::open(config, None).unwrap();
    let blob = w.wrap(KEK).unwrap();
    assert_eq!(w.unwrap(&blob).unwrap().expose_secret(), KEK);
}

#[test]
#[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
fn the_golden_blob_from_another_tpm_is_unusable_here() {
    let tpm = Swtpm::start();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tpm-blob-v1-plain.bin");
    let golden = std::fs::read(path).unwrap();
    assert_eq!(wrapper(&tpm, None).unwrap(&golden).err(), Some(WrapperError::KeyInvalidated));
}
