//! Sets `cfg(aead_aws_lc)` when XChaCha20-Poly1305 runs its bulk on aws-lc-rs: the `aws-lc`
//! feature on an x86_64 or aarch64 target other than Android and iOS. Keep this condition the same
//! as the target table that gives vault-core its `aws-lc-rs` and `chacha20` dependencies in
//! `Cargo.toml`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(aead_aws_lc)");
    println!("cargo::rerun-if-changed=build.rs");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let feature = std::env::var_os("CARGO_FEATURE_AWS_LC").is_some();
    if feature && matches!(arch.as_str(), "x86_64" | "aarch64") && !matches!(os.as_str(), "android" | "ios") {
        println!("cargo::rustc-cfg=aead_aws_lc");
    }
}
