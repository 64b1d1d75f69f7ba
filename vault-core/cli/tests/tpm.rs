//! `vault` with a TPM slot, against software TPMs (swtpm) that each test starts for itself: run by
//! scripts/test.sh in a build with the `tpm` feature, ignored elsewhere. One test checks that a
//! build without the feature refuses `--tpm` clearly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
// Without the feature only the refusal test is built; the helpers for the others stay unused.
#![cfg_attr(not(feature = "tpm"), allow(dead_code, unused_imports))]

use std::path::{Path, PathBuf};
use std::process::Output;

use test_support::cli::{VaultCommand, json, ok};

const PASS: &str = "PASS-tpm-test-7731";
const PIN: &str = "4096";
const FAST: [&str; 6] = ["--kdf-memory-mib", "8", "--kdf-iterations", "1", "--kdf-parallelism", "1"];

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    root: PathBuf,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    Env { dir: root.join("vault"), root, _tmp: tmp }
}

/// `vault --vault DIR ARGS` with the TPM at `tcti` (through TPM2TOOLS_TCTI), the passphrase if
/// given (VAULT_PASSPHRASE), and `stdin`.
fn vault(dir: &Path, tcti: &str, passphrase: Option<&str>, args: &[&str], stdin: &str) -> Output {
    let mut command = VaultCommand::new(env!("CARGO_BIN_EXE_vault"))
        .arg("--vault")
        .arg(dir)
        .args(args)
        // The TSS library logs TPM error codes on stderr; the tests read the tool's own line.
        .envs(&[("TPM2TOOLS_TCTI", tcti), ("TSS2_LOG", "all+none")]);
    if let Some(p) = passphrase {
        command = command.passphrase(p);
    }
    command.stdin(stdin).output()
}

/// The exit code and the tool's error line.
fn failed(output: &Output) -> (i32, String) {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let line = stderr.lines().find(|l| l.starts_with("vault: error:")).unwrap_or_default().to_owned();
    (output.status.code().unwrap_or(-1), line)
}

#[cfg(feature = "tpm")]
mod with_swtpm {
    use super::*;
    use test_support::swtpm::Swtpm;

    fn tpm_args<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [&["--tpm", "--tpm-pin-stdin"][..], args].concat()
    }

    fn pin_line() -> String {
        format!("{PIN}\n")
    }

    /// A vault with a passphrase slot (0) and a TPM slot (1) with a PIN.
    fn tpm_vault(env: &Env, tpm: &Swtpm) {
        let init = [&["init", "--tpm", "--tpm-pin-stdin"][..], &FAST].concat();
        ok(vault(&env.dir, &tpm.tcti(), Some(PASS), &init, &pin_line()));
    }

    fn unlocks_with_tpm(env: &Env, tpm: &Swtpm) -> bool {
        vault(
            &env.dir,
            &tpm.tcti(),
            None,
            &["--tpm", "--tpm-pin-stdin", "msg", "list", "--conversation", "c"],
            &pin_line(),
        )
        .status
        .success()
    }

    fn unlocks_with_passphrase(env: &Env, tpm: &Swtpm) -> bool {
        vault(&env.dir, &tpm.tcti(), Some(PASS), &["msg", "list", "--conversation", "c"], "").status.success()
    }

    #[test]
    #[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
    fn a_tpm_slot_and_a_passphrase_slot_both_open_the_vault() {
        let env = env();
        let tpm = Swtpm::start();
        tpm_vault(&env, &tpm);
        let t = tpm.tcti();
        ok(vault(
            &env.dir,
            &t,
            None,
            &tpm_args(&["msg", "add", "--conversation", "c", "--sender", "a", "--body", "via tpm"]),
            &pin_line(),
        ));
        ok(vault(
            &env.dir,
            &t,
            Some(PASS),
            &["msg", "add", "--conversation", "c", "--sender", "b", "--body", "via pass"],
            "",
        ));
        let media = env.root.join("photo.bin");
        std::fs::write(&media, vec![7u8; 200_000]).unwrap();
        let id = ok(vault(&env.dir, &t, None, &tpm_args(&["media", "add", media.to_str().unwrap()]), &pin_line()));
        let out = env.root.join("out.bin");
        ok(vault(&env.dir, &t, Some(PASS), &["media", "get", id.trim(), out.to_str().unwrap()], ""));
        assert_eq!(std::fs::read(&out).unwrap(), vec![7u8; 200_000]);
        let listed = ok(vault(&env.dir, &t, None, &tpm_args(&["msg", "list", "--conversation", "c"]), &pin_line()));
        assert!(listed.contains("via tpm") && listed.contains("via pass"), "{listed}");
        // The dashboard: the TPM slot, hardware-backed, unlocked by it.
        let status = json(vault(&env.dir, &t, None, &tpm_args(&["--json", "status"]), &pin_line()));
        let tpm_slot = &status["slots"][1];
        assert_eq!(tpm_slot["kind"], "key_wrapper");
        assert_eq!(tpm_slot["tpm"], true);
        assert_eq!(tpm_slot["label"], "tpm2-IBM");
        assert_eq!(tpm_slot["hardware_backed"], true);
        assert_eq!(status["hardware_backed_slots"], 1);
        assert_eq!(status["unlocked_by"], 1);
        let text = ok(vault(&env.dir, &t, None, &tpm_args(&["status"]), &pin_line()));
        assert!(text.contains("slot 1   TPM 2.0      tpm2-IBM: hardware-backed"), "{text}");
        // `key list` needs no TPM and no secret.
        assert!(ok(vault(&env.dir, "device:/nonexistent", None, &["key", "list"], "")).contains("TPM 2.0"));
    }

    #[test]
    #[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
    fn wrong_pins_fail_then_the_tpm_locks_out_and_the_passphrase_still_opens() {
        let env = env();
        let tpm = Swtpm::start();
        tpm_vault(&env, &tpm);
        let t = tpm.tcti();
        let list = ["--tpm", "--tpm-pin-stdin", "msg", "list", "--conversation", "c"];
        // swtpm's TPM allows 3 failures before its dictionary-attack lockout.
        for _ in 0..3 {
            let (code, line) = failed(&vault(&env.dir, &t, None, &list, "1111\n"));
            assert_eq!(code, 3, "{line}");
            assert!(line.contains("authentication failed"), "{line}");
        }
        let (code, line) = failed(&vault(&env.dir, &t, None, &list, "1111\n"));
        assert_eq!(code, 5, "{line}");
        assert!(line.contains("locked out") && line.contains("retry in 1000 s"), "{line}");
        // The right PIN is refused too while the lockout lasts; the passphrase slot is not.
        assert_eq!(failed(&vault(&env.dir, &t, None, &list, &pin_line())).0, 5);
        assert!(unlocks_with_passphrase(&env, &tpm));
        // The PIN from the environment instead of stdin: same lockout.
        let (code, _) = failed(
            &VaultCommand::new(env!("CARGO_BIN_EXE_vault"))
                .arg("--vault")
                .arg(&env.dir)
                .args(["--tpm", "--tpm-tcti", &t, "status"])
                .envs(&[("VAULT_TPM_PIN", PIN), ("TSS2_LOG", "all+none")])
                .stdin("")
                .output(),
        );
        assert_eq!(code, 5);
    }

    #[test]
    #[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
    fn a_vault_copied_to_a_machine_with_another_tpm_opens_only_with_the_passphrase() {
        let env = env();
        let (tpm, other) = (Swtpm::start(), Swtpm::start());
        tpm_vault(&env, &tpm);
        let (code, line) =
            failed(&vault(&env.dir, &other.tcti(), None, &["--tpm", "--tpm-pin-stdin", "status"], &pin_line()));
        assert_eq!(code, 1, "{line}");
        assert!(line.contains("TPM slot is unusable"), "{line}");
        assert!(unlocks_with_passphrase(&env, &other));
        assert!(unlocks_with_tpm(&env, &tpm));
    }

    #[test]
    #[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
    fn after_a_tpm_clear_the_dead_slot_is_removed_and_a_new_one_added() {
        let env = env();
        let mut tpm = Swtpm::start();
        tpm_vault(&env, &tpm);
        tpm.replace_with_fresh_state();
        let t = tpm.tcti();
        let (code, line) = failed(&vault(&env.dir, &t, None, &["--tpm", "--tpm-pin-stdin", "status"], &pin_line()));
        assert_eq!(code, 1, "{line}");
        assert!(line.contains("TPM slot is unusable") && line.contains("remove-slot"), "{line}");
        assert!(unlocks_with_passphrase(&env, &tpm));
        ok(vault(&env.dir, &t, Some(PASS), &["key", "remove-slot", "1"], ""));
        let slots = json(vault(&env.dir, &t, None, &["--json", "key", "list"], ""));
        assert_eq!(slots["slots"].as_array().unwrap().len(), 1);
        // A new TPM slot (this time without a PIN) on the new TPM state.
        ok(vault(&env.dir, &t, Some(PASS), &["key", "add-tpm"], ""));
        ok(vault(&env.dir, &t, None, &["--tpm", "status"], ""));
    }

    #[test]
    #[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
    fn a_new_slot_after_a_clear_opens_even_before_the_dead_one_is_removed() {
        let env = env();
        let mut tpm = Swtpm::start();
        tpm_vault(&env, &tpm);
        tpm.replace_with_fresh_state();
        ok(vault(&env.dir, &tpm.tcti(), Some(PASS), &["--tpm-pin-stdin", "key", "add-tpm"], &pin_line()));
        assert!(unlocks_with_tpm(&env, &tpm));
    }

    #[test]
    #[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
    fn key_rotation_keeps_the_tpm_slot_working() {
        let env = env();
        let tpm = Swtpm::start();
        tpm_vault(&env, &tpm);
        let t = tpm.tcti();
        ok(vault(
            &env.dir,
            &t,
            Some(PASS),
            &["msg", "add", "--conversation", "c", "--sender", "a", "--body", "kept"],
            "",
        ));
        // Re-seal the TPM slot under a new TPM object (fresh KEK).
        let before = std::fs::read(env.dir.join("keyslots")).unwrap();
        let rotated =
            json(vault(&env.dir, &t, None, &["--tpm", "--tpm-pin-stdin", "--json", "key", "rotate"], &pin_line()));
        assert_eq!(rotated["rotated"], "tpm");
        assert_eq!(rotated["slots"], serde_json::json!([1]));
        assert_ne!(std::fs::read(env.dir.join("keyslots")).unwrap(), before);
        assert!(unlocks_with_tpm(&env, &tpm));
        // Rotate the root key, unlocked by the TPM, with the passphrase to re-seal slot 0.
        ok(vault(&env.dir, &t, Some(PASS), &["--tpm", "--tpm-pin-stdin", "key", "rotate", "--root"], &pin_line()));
        assert!(unlocks_with_tpm(&env, &tpm));
        assert!(unlocks_with_passphrase(&env, &tpm));
        // And again: the TPM slot's KEK is reused, the new root key sealed under it.
        ok(vault(&env.dir, &t, Some(PASS), &["--tpm", "--tpm-pin-stdin", "key", "rotate", "--root"], &pin_line()));
        let listed = ok(vault(&env.dir, &t, Some(PASS), &["msg", "list", "--conversation", "c"], ""));
        assert!(listed.contains("kept"));
        assert!(unlocks_with_tpm(&env, &tpm));
        // Without the TPM, a root rotation names the TPM slot it cannot re-seal.
        let (code, line) = failed(&vault(&env.dir, &t, Some(PASS), &["key", "rotate", "--root"], ""));
        assert_eq!(code, 2, "{line}");
        assert!(line.contains('1'), "{line}");
    }

    #[test]
    #[cfg_attr(not(swtpm_available), ignore = "needs swtpm: run scripts/test.sh")]
    fn a_pcr_policy_slot_dies_when_its_pcr_changes() {
        let env = env();
        let tpm = Swtpm::start();
        let t = tpm.tcti();
        let init = [&["init", "--tpm", "--tpm-pcrs", "16"][..], &FAST].concat();
        ok(vault(&env.dir, &t, Some(PASS), &init, ""));
        ok(vault(&env.dir, &t, None, &["--tpm", "status"], ""));
        let status = std::process::Command::new("tpm2_pcrextend")
            .arg("16:sha256=0000000000000000000000000000000000000000000000000000000000000001")
            .env("TPM2TOOLS_TCTI", &t)
            .status()
            .unwrap();
        assert!(status.success());
        let (code, line) = failed(&vault(&env.dir, &t, None, &["--tpm", "status"], ""));
        assert_eq!(code, 1, "{line}");
        assert!(line.contains("PCRs"), "{line}");
        let (code, _) = failed(&vault(&env.dir, &t, Some(PASS), &["--tpm-pcrs", "24", "key", "add-tpm"], ""));
        assert_eq!(code, 2);
    }
}

#[cfg(feature = "tpm")]
#[test]
fn no_tpm_is_reported_as_such() {
    let env = env();
    let init = [&["init", "--tpm", "--tpm-tcti", "device:/nonexistent/tpmrm0"][..], &FAST].concat();
    let (code, line) = failed(&vault(&env.dir, "", Some(PASS), &init, ""));
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("no TPM found at device:/nonexistent/tpmrm0"), "{line}");
    assert!(!env.dir.exists(), "no vault is created without its TPM slot");
    let (code, line) =
        failed(&vault(&env.dir, "", Some(PASS), &["--tpm", "--tpm-pin-stdin", "status"], &"9".repeat(40)));
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("invalid TPM PIN") && !line.contains("9999"), "{line}");
}

#[cfg(not(feature = "tpm"))]
#[test]
fn a_build_without_the_tpm_feature_refuses_tpm_options() {
    let env = env();
    let init = [&["init", "--tpm"][..], &FAST].concat();
    let (code, line) = failed(&vault(&env.dir, "swtpm:host=127.0.0.1,port=1", Some(PASS), &init, ""));
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("built without TPM support"), "{line}");
    assert!(!env.dir.exists());
}
