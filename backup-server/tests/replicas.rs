//! Two server processes sharing one bucket on a real S3 server (SeaweedFS): guess counting and
//! the delay schedule stay exact across replicas and restarts, and what one replica stores the
//! other serves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use backup_api::client::{BackupClient, ClientError};
use backup_api::{ErrorCode, OPAQUE_CONTEXT, OpaqueSuite};
use backup_server::ServerSecrets;
use opaque_ke::{ClientLogin, ClientLoginFinishParameters, CredentialResponse};
use support::{ServerProcess, ksf, spawn, unique};

const LIMIT: u32 = 3;

/// Starts replicas of one server (same setup) on one fresh prefix of the S3 test server's bucket.
struct Replicas {
    dir: std::path::PathBuf,
    setup: String,
    store: String,
    endpoint: String,
    extra: Vec<String>,
}

impl Replicas {
    fn new(dir: &std::path::Path, extra: &[&str]) -> Self {
        let env = test_support::s3::s3_env();
        use base64::Engine as _;
        Self {
            dir: dir.to_owned(),
            setup: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ServerSecrets::generate().encode()),
            store: format!("s3://{}/{}", env.bucket, unique("replicas")),
            endpoint: env.endpoint,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn start(&self, name: &str) -> ServerProcess {
        let data = self.dir.join(name);
        let mut args = vec![
            "--store",
            &self.store,
            "--s3-endpoint",
            &self.endpoint,
            "--s3-allow-http",
            "--data-dir",
            data.to_str().unwrap(),
            "--rate-limit-per-ip",
            "0",
            "--rate-limit-per-account",
            "0",
            "--login-starts-per-ip-minute",
            "0",
        ];
        args.extend(self.extra.iter().map(String::as_str));
        spawn(&args, &[("BACKUP_SERVER_SETUP", &self.setup)], &self.dir.join(format!("{name}.log")))
    }
}

/// Two replicas with the free-login count [`LIMIT`] and an hour's delay after it.
fn replicas(dir: &std::path::Path) -> (ServerProcess, ServerProcess) {
    let limit = LIMIT.to_string();
    let replicas = Replicas::new(dir, &["--login-attempt-limit", &limit, "--login-delay-base-secs", "3600"]);
    (replicas.start("a"), replicas.start("b"))
}

/// One login start with the right password, never finished: whether the server evaluated it under
/// the account's real record (the client can open the envelope) or answered with a decoy.
fn real_evaluation(client: &BackupClient, account: &str, password: &[u8]) -> bool {
    let mut rng = rand_08::rngs::OsRng;
    let start = ClientLogin::<OpaqueSuite>::start(&mut rng, password).unwrap();
    let answer = client.login_start_raw(account, &start.message.serialize()).unwrap();
    let response = CredentialResponse::<OpaqueSuite>::deserialize(&answer.response).unwrap();
    let argon2 = answer.ksf.argon2().unwrap();
    let params = ClientLoginFinishParameters::new(Some(OPAQUE_CONTEXT), Default::default(), Some(&argon2));
    start.state.finish(&mut rng, password, response, params).is_ok()
}

#[test]
#[cfg_attr(not(s3_available), ignore = "needs an S3 server: run scripts/test.sh")]
fn guesses_are_counted_exactly_across_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = replicas(dir.path());
    let (client_a, client_b) = (BackupClient::new(&a.url).unwrap(), BackupClient::new(&b.url).unwrap());
    let account = unique("storm");
    client_a.register(&account, b"right", ksf()).unwrap();

    // Eight concurrent login starts, four per replica, each with the right password and never
    // finished (so nothing resets the counter): exactly LIMIT of them may get a real evaluation.
    let real = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let client = if i % 2 == 0 { &client_a } else { &client_b };
                let account = &account;
                scope.spawn(move || real_evaluation(client, account, b"right"))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).filter(|r| *r).count()
    });
    assert_eq!(real, LIMIT as usize, "real evaluations across both replicas");
    // Delayed on both replicas.
    assert!(matches!(client_a.login(&account, b"right"), Err(ClientError::LoginFailed)));
    assert!(matches!(client_b.login(&account, b"right"), Err(ClientError::LoginFailed)));
    assert!(!real_evaluation(&client_b, &account, b"right"));
}

/// A stranger spends the free guesses at one replica: the owner's right password is then delayed
/// at the other replica and after that replica restarts, and admitted once the delay has passed.
#[test]
#[cfg_attr(not(s3_available), ignore = "needs an S3 server: run scripts/test.sh")]
fn the_owner_is_delayed_not_refused_and_the_schedule_holds_across_replicas_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let replicas = Replicas::new(
        dir.path(),
        &["--login-attempt-limit", "2", "--login-delay-base-secs", "6", "--login-delay-max-secs", "6"],
    );
    let (a, mut b) = (replicas.start("a"), replicas.start("b"));
    let client_a = BackupClient::new(&a.url).unwrap();
    let account = unique("owner");
    client_a.register(&account, b"right", ksf()).unwrap();
    for _ in 0..2 {
        assert!(matches!(client_a.login(&account, b"stranger's guess"), Err(ClientError::LoginFailed)));
    }
    let spent = std::time::Instant::now();
    let client_b = BackupClient::new(&b.url).unwrap();
    assert!(!real_evaluation(&client_b, &account, b"right"), "delayed at the other replica");
    b.terminate();
    assert_eq!(b.wait_exit(std::time::Duration::from_secs(10)), Some(0));
    let b = replicas.start("b");
    let client_b = BackupClient::new(&b.url).unwrap();
    assert!(spent.elapsed().as_secs() < 5, "the restart took too long for this test's delay");
    assert!(!real_evaluation(&client_b, &account, b"right"), "still delayed after a restart");
    std::thread::sleep(std::time::Duration::from_secs(7).saturating_sub(spent.elapsed()));
    client_b.login(&account, b"right").expect("admitted once the delay has passed");
}

#[test]
#[cfg_attr(not(s3_available), ignore = "needs an S3 server: run scripts/test.sh")]
fn one_replica_serves_what_the_other_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = replicas(dir.path());
    let (client_a, client_b) = (BackupClient::new(&a.url).unwrap(), BackupClient::new(&b.url).unwrap());
    let account = unique("shared");
    client_a.register(&account, b"pw", ksf()).unwrap();
    // A session from one replica works on the other; so does a device token.
    let session = client_b.login(&account, b"pw").unwrap().token;
    let (_, device) = client_a.enrol_device(&session, "phone").unwrap();
    client_a.put_object(&device, "pack-1", b"written through a").unwrap();
    assert_eq!(client_b.get_object(&device, "pack-1", 100).unwrap(), b"written through a");
    assert_eq!(client_b.put_object(&session, "pack-1", b"again").unwrap_err().code(), Some(ErrorCode::ObjectExists));
    let etag = client_a.put_head(&device, b"generation 1", 1, None).unwrap();
    client_b.put_head(&device, b"generation 2", 2, Some(&etag)).unwrap();
    assert_eq!(
        client_a.put_head(&device, b"stale", 3, Some(&etag)).unwrap_err().code(),
        Some(ErrorCode::PreconditionFailed),
        "compare-and-swap holds across replicas"
    );
    assert_eq!(client_a.get_head(&session).unwrap().unwrap().0, b"generation 2");

    // Revoking the device through one replica locks it out of the other within the documented
    // cache lifetime of a device-token check.
    let devices = client_b.list_devices(&session).unwrap().devices;
    client_a.revoke_device(&session, &devices[0].id).unwrap();
    assert_eq!(client_a.head_object(&device, "pack-1").unwrap_err().code(), Some(ErrorCode::Unauthorized));
    std::thread::sleep(backup_server::authcache::DEVICE_AUTH_TTL + std::time::Duration::from_millis(200));
    assert_eq!(client_b.head_object(&device, "pack-1").unwrap_err().code(), Some(ErrorCode::Unauthorized));
}
