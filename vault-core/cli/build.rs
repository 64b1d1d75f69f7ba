//! Sets `cfg(swtpm_available)` when the build sees `VAULT_TEST_SWTPM` (set by scripts/test.sh
//! once `swtpm` is installed), so the CLI's TPM tests run there (in a build with the `tpm`
//! feature) and are reported as ignored elsewhere. Nothing else depends on it.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(swtpm_available)");
    println!("cargo::rerun-if-env-changed=VAULT_TEST_SWTPM");
    if std::env::var_os("VAULT_TEST_SWTPM").is_some() {
        println!("cargo::rustc-cfg=swtpm_available");
    }
}
