//! The S3 test server (SeaweedFS), started by `scripts/test.sh` through `scripts/lib/seaweedfs.sh`,
//! which exports where it is and the credentials.
//!
//! Tests that need it are compiled to run only when the build saw `BACKUP_TEST_S3_BUCKET`: each
//! crate with such tests has a build script that then sets `cfg(s3_available)`, and the tests
//! carry `#[cfg_attr(not(s3_available), ignore = "needs an S3 server: run scripts/test.sh")]`.
//! (The bucket is the variable watched because its value is stable; the endpoint's port changes
//! on every start, and watching it would rebuild the crates every time.) A test that runs fails
//! if the server is not there.

use std::net::{TcpStream, ToSocketAddrs as _};
use std::time::Duration;

/// The variable whose presence at build time makes the S3 tests run (see the module docs).
pub const GATE: &str = "BACKUP_TEST_S3_BUCKET";

/// Where the S3 test server is.
#[derive(Debug, Clone)]
pub struct S3Env {
    /// Its endpoint, `http://127.0.0.1:<port>` (`BACKUP_TEST_S3_ENDPOINT`).
    pub endpoint: String,
    /// A bucket the tests may write to (`BACKUP_TEST_S3_BUCKET`).
    pub bucket: String,
}

/// The S3 test server, for a test that needs one: fails the test if the variables are missing or
/// nothing answers at the endpoint.
pub fn s3_env() -> S3Env {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: the S3 tests need the server scripts/test.sh starts (scripts/lib/seaweedfs.sh)")
        })
    };
    let env = S3Env { endpoint: var("BACKUP_TEST_S3_ENDPOINT"), bucket: var(GATE) };
    let authority = env.endpoint.split_once("://").map_or(env.endpoint.as_str(), |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or_default();
    let reachable = authority
        .to_socket_addrs()
        .is_ok_and(|mut addrs| addrs.any(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok()));
    assert!(reachable, "the S3 test server at {} does not answer", env.endpoint);
    env
}
