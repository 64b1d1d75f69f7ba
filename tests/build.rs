//! Sets `cfg(s3_available)` when the build sees the S3 test server's bucket variable, so the S3
//! tests run under `scripts/test.sh` and are reported as ignored elsewhere (see test-support's
//! `s3` module). Nothing else depends on it.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(s3_available)");
    println!("cargo::rerun-if-env-changed=BACKUP_TEST_S3_BUCKET");
    if std::env::var_os("BACKUP_TEST_S3_BUCKET").is_some() {
        println!("cargo::rustc-cfg=s3_available");
    }
}
