//! Command line and configuration file. Every setting can come from a flag or from the TOML file
//! named by `--config` (same names, with underscores); a flag wins over the file, the file over the
//! default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use backup_api::KsfParams;

use crate::guesses::{LoginDelays, LoginPolicy};
use crate::state::Limits;

/// The port the server listens on by default (on 127.0.0.1).
pub const DEFAULT_PORT: u16 = 8371;

/// Zero-knowledge backup server: OPAQUE logins and opaque blobs on a local directory or S3.
#[derive(Debug, Parser)]
#[command(name = "backup-server", version)]
pub struct Cli {
    /// Server settings.
    #[command(flatten)]
    pub settings: Settings,
    /// A maintenance command instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Maintenance commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resets the failed-login counter of a locked account. Run it with the same store and setup as
    /// the server; on a local store, stop the server first (it holds the store's lock). Settings
    /// may come before or after the command.
    UnlockAccount {
        /// The account identifier as the app registered it.
        #[arg(long)]
        account: String,
    },
    /// Creates a login-ticket signing key, as an app's account service holds one (for tests and
    /// development): writes the secret to FILE (0600; never over an existing file) and prints the
    /// public key to give the server with --login-authoriser-key.
    TicketKeygen {
        /// Where to write the signing key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Lists an account's deleted objects still in their grace period (restorable by the owner
    /// with a password session) and when each is purged. Run it with the same store and setup as
    /// the server; on a local store, stop the server first.
    ListDeleted {
        /// The account identifier as the app registered it.
        #[arg(long)]
        account: String,
    },
    /// Issues a login ticket for an account with a key from `ticket-keygen` and prints it (what an
    /// app's account service does after it has authenticated the user).
    IssueTicket {
        /// The signing key file.
        #[arg(long, value_name = "FILE")]
        signing_key: PathBuf,
        /// The account identifier as the app registers it.
        #[arg(long)]
        account: String,
        /// Lifetime in seconds (at most 3600).
        #[arg(long, default_value_t = 300)]
        ttl_secs: u64,
    },
}

/// Every server setting; `None` means "not given here".
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// TOML file with any of these settings.
    #[arg(long, value_name = "FILE", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8371].
    #[arg(long, value_name = "ADDR", global = true)]
    pub listen: Option<SocketAddr>,
    /// Directory for the default local store, the setup file and the lock [default: ./backup-server-data].
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Object store URL: file:///path, s3://bucket/prefix or memory:// [default: file://DATA_DIR/objects].
    #[arg(long, value_name = "URL", global = true)]
    pub store: Option<String>,
    /// The OPAQUE server setup (secret; created 0600 if missing) [default: DATA_DIR/opaque-setup.key].
    /// The BACKUP_SERVER_SETUP environment variable, if set, is used instead.
    #[arg(long, value_name = "PATH", global = true)]
    pub setup_file: Option<PathBuf>,
    /// PEM certificate chain for built-in TLS.
    #[arg(long, value_name = "PEM", requires = "tls_key", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for built-in TLS.
    #[arg(long, value_name = "PEM", requires = "tls_cert", global = true)]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (only behind a TLS-terminating proxy).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", global = true)]
    pub insecure_http: Option<bool>,
    /// S3 endpoint for S3-compatible servers (else AWS_ENDPOINT or AWS's own).
    #[arg(long, value_name = "URL", global = true)]
    pub s3_endpoint: Option<String>,
    /// S3 region (else AWS_REGION).
    #[arg(long, global = true)]
    pub s3_region: Option<String>,
    /// Allow a plain-HTTP S3 endpoint.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", global = true)]
    pub s3_allow_http: Option<bool>,
    /// Counted login starts (reset by a success) admitted without delay; each further one waits
    /// longer [default: 10].
    #[arg(long, global = true)]
    pub login_attempt_limit: Option<u32>,
    /// The first delay after the free login starts, in seconds; it doubles with each further
    /// counted start [default: 60].
    #[arg(long, global = true)]
    pub login_delay_base_secs: Option<u64>,
    /// The longest delay between two counted login starts, in seconds [default: 14400].
    #[arg(long, global = true)]
    pub login_delay_max_secs: Option<u64>,
    /// Login starts per minute from one client address, 0 for no limit [default: 30, burst 2x].
    #[arg(long, global = true)]
    pub login_starts_per_ip_minute: Option<u32>,
    /// Public key (unpadded base64url Ed25519) of the app's account service; repeat for several.
    /// When set, only login starts with a valid ticket from one of them are answered and counted.
    /// A key may begin with `-` (one in 64 does), so a value that looks like a flag is taken.
    #[arg(long = "login-authoriser-key", value_name = "KEY", global = true, allow_hyphen_values = true)]
    pub login_authoriser_keys: Option<Vec<String>>,
    /// Key-stretching parameters decoys answer with, as MEMORY_KIB:PASSES:LANES; repeat for each
    /// set the apps register with [default: 65536:3:1].
    #[arg(long = "decoy-ksf", value_name = "M:P:L", global = true)]
    pub decoy_ksf: Option<Vec<String>>,
    /// Session token lifetime in seconds [default: 900].
    #[arg(long, global = true)]
    pub session_ttl_secs: Option<u64>,
    /// Largest object in bytes [default: 4 GiB].
    #[arg(long, global = true)]
    pub max_object_bytes: Option<u64>,
    /// Storage quota per account in bytes [default: 50 GiB].
    #[arg(long, global = true)]
    pub quota_bytes: Option<u64>,
    /// Days a deleted object stays restorable by its owner before the server purges it; 0 deletes
    /// at once [default: 7].
    #[arg(long, global = true)]
    pub deletion_grace_days: Option<u32>,
    /// Requests per second per client address, 0 for no limit [default: 100, burst 2x].
    #[arg(long, global = true)]
    pub rate_limit_per_ip: Option<u32>,
    /// Requests per second per account, 0 for no limit [default: 100, burst 2x].
    #[arg(long, global = true)]
    pub rate_limit_per_account: Option<u32>,
    /// Time limit in seconds for requests other than object transfers [default: 30].
    #[arg(long, global = true)]
    pub request_timeout_secs: Option<u64>,
    /// Time limit in seconds for object uploads and downloads [default: 3600].
    #[arg(long, global = true)]
    pub transfer_timeout_secs: Option<u64>,
    /// Lifetime in seconds of the presigned URLs an S3 store's clients get for transfers
    /// straight to the store; 0 turns them off, so that every byte goes through the server
    /// [default: 600].
    #[arg(long, global = true)]
    pub direct_url_ttl_secs: Option<u64>,
    /// Seconds to let in-flight requests finish after SIGTERM or SIGINT [default: 30].
    #[arg(long, global = true)]
    pub shutdown_grace_secs: Option<u64>,
    /// Log format: text or json [default: text].
    #[arg(long, global = true)]
    pub log_format: Option<String>,
}

macro_rules! overlay {
    ($self:ident, $file:ident, $($field:ident),*) => {
        $( if $self.$field.is_none() { $self.$field = $file.$field.take(); } )*
    };
}

impl Settings {
    /// Fills every setting not given on the command line from the `--config` file, if any.
    pub fn with_config_file(mut self) -> Result<Self, String> {
        let Some(path) = self.config.clone() else { return Ok(self) };
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut file: Settings = toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        overlay!(
            self,
            file,
            listen,
            data_dir,
            store,
            setup_file,
            tls_cert,
            tls_key,
            insecure_http,
            s3_endpoint,
            s3_region,
            s3_allow_http,
            login_attempt_limit,
            login_delay_base_secs,
            login_delay_max_secs,
            login_starts_per_ip_minute,
            login_authoriser_keys,
            decoy_ksf,
            session_ttl_secs,
            max_object_bytes,
            quota_bytes,
            deletion_grace_days,
            rate_limit_per_ip,
            rate_limit_per_account,
            request_timeout_secs,
            transfer_timeout_secs,
            direct_url_ttl_secs,
            shutdown_grace_secs,
            log_format
        );
        Ok(self)
    }

    /// The listen address.
    pub fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from("backup-server-data"))
    }

    /// The setup file path.
    pub fn setup_file(&self) -> PathBuf {
        self.setup_file.clone().unwrap_or_else(|| self.data_dir().join("opaque-setup.key"))
    }

    /// The grace period for in-flight requests at shutdown.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs.unwrap_or(30))
    }

    /// The login policy in force; an unusable key or parameter set is an error naming it.
    pub fn login_policy(&self) -> Result<LoginPolicy, String> {
        let defaults = LoginPolicy::default();
        let rate = |given: Option<u32>, default: (u32, u32)| given.map_or(default, |r| (r, r.saturating_mul(2)));
        let delays = LoginDelays {
            free: self.login_attempt_limit.unwrap_or(defaults.delays.free).max(1),
            base_secs: self.login_delay_base_secs.unwrap_or(defaults.delays.base_secs).max(1),
            max_secs: self.login_delay_max_secs.unwrap_or(defaults.delays.max_secs).max(1),
        };
        let authorisers = self
            .login_authoriser_keys
            .iter()
            .flatten()
            .map(|text| {
                backup_api::ticket::parse_public_key(text)
                    .ok_or_else(|| format!("login authoriser key {text:?} is not a base64url Ed25519 public key"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let decoy_ksf = match &self.decoy_ksf {
            Some(sets) if !sets.is_empty() => sets.iter().map(|text| parse_ksf(text)).collect::<Result<Vec<_>, _>>()?,
            _ => defaults.decoy_ksf,
        };
        Ok(LoginPolicy {
            delays,
            authorisers,
            decoy_ksf,
            starts_per_ip_minute: rate(self.login_starts_per_ip_minute, defaults.starts_per_ip_minute),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> Result<Limits, String> {
        let defaults = Limits::default();
        let rate = |given: Option<u32>, default: (u32, u32)| given.map_or(default, |r| (r, r.saturating_mul(2)));
        Ok(Limits {
            login: self.login_policy()?,
            session_ttl: self.session_ttl_secs.map_or(defaults.session_ttl, Duration::from_secs),
            protocol_state_ttl: defaults.protocol_state_ttl,
            max_object_bytes: self.max_object_bytes.unwrap_or(defaults.max_object_bytes),
            quota_bytes: self.quota_bytes.unwrap_or(defaults.quota_bytes),
            max_devices: defaults.max_devices,
            deletion_grace: self
                .deletion_grace_days
                .map_or(defaults.deletion_grace, |days| Duration::from_secs(u64::from(days) * 86_400)),
            per_ip_rate: rate(self.rate_limit_per_ip, defaults.per_ip_rate),
            per_account_rate: rate(self.rate_limit_per_account, defaults.per_account_rate),
            request_timeout: self.request_timeout_secs.map_or(defaults.request_timeout, Duration::from_secs),
            transfer_timeout: self.transfer_timeout_secs.map_or(defaults.transfer_timeout, Duration::from_secs),
            direct_url_ttl: self.direct_url_ttl_secs.map_or(defaults.direct_url_ttl, Duration::from_secs),
            header_read_timeout: defaults.header_read_timeout,
        })
    }
}

/// Parses `MEMORY_KIB:PASSES:LANES` into checked key-stretching parameters.
fn parse_ksf(text: &str) -> Result<KsfParams, String> {
    let refused = || format!("decoy KSF {text:?} is not MEMORY_KIB:PASSES:LANES within the accepted bounds");
    let numbers: Vec<u32> =
        text.split(':').map(|n| n.trim().parse().map_err(|_| refused())).collect::<Result<_, _>>()?;
    match numbers[..] {
        [memory, passes, lanes] => KsfParams::new(memory, passes, lanes).map_err(|_| refused()),
        _ => Err(refused()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first signing seed (in a fixed order) whose public key's base64url text begins with '-'.
    fn hyphen_seed() -> [u8; 32] {
        (0..=u16::MAX)
            .map(|i| {
                let mut seed = [0; 32];
                seed[..2].copy_from_slice(&i.to_le_bytes());
                seed
            })
            .find(|seed| backup_api::ticket::public_key(seed)[0] >> 2 == 62)
            .expect("one seed in 64 gives a key that begins with '-'")
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\nlogin_attempt_limit = 5\nquota_bytes = 1000\n").unwrap();
        let cli =
            Cli::try_parse_from(["backup-server", "--config", file.to_str().unwrap(), "--quota-bytes", "7"]).unwrap();
        let settings = cli.settings.with_config_file().unwrap();
        assert_eq!(settings.listen().to_string(), "0.0.0.0:9000");
        let limits = settings.limits().unwrap();
        assert_eq!(limits.login.delays.free, 5);
        assert_eq!(limits.quota_bytes, 7);
        assert_eq!(limits.session_ttl, Duration::from_secs(900));
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "listne = \"0.0.0.0:9000\"\n").unwrap();
        let cli = Cli::try_parse_from(["backup-server", "--config", file.to_str().unwrap()]).unwrap();
        let err = cli.settings.with_config_file().unwrap_err();
        assert!(err.contains("listne"), "{err}");
    }

    #[test]
    fn settings_may_follow_the_subcommand() {
        let cli = Cli::try_parse_from([
            "backup-server",
            "unlock-account",
            "--account",
            "a@example.org",
            "--data-dir",
            "/srv/d",
            "--store",
            "file:///srv/s",
        ])
        .unwrap();
        assert_eq!(cli.settings.data_dir(), PathBuf::from("/srv/d"));
        assert_eq!(cli.settings.store.as_deref(), Some("file:///srv/s"));
        assert!(matches!(cli.command, Some(Command::UnlockAccount { account }) if account == "a@example.org"));
        let before =
            Cli::try_parse_from(["backup-server", "--data-dir", "/srv/d", "unlock-account", "--account", "a"]).unwrap();
        assert_eq!(before.settings.data_dir(), PathBuf::from("/srv/d"));
    }

    #[test]
    fn login_policy_settings_parse_and_bad_ones_are_named() {
        let key = backup_api::ticket::public_key(&[3; 32]);
        let key = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, key);
        let cli = Cli::try_parse_from([
            "backup-server",
            "--login-authoriser-key",
            &key,
            "--decoy-ksf",
            "32768:2:1",
            "--decoy-ksf",
            "65536:3:1",
            "--login-delay-max-secs",
            "600",
        ])
        .unwrap();
        let policy = cli.settings.login_policy().unwrap();
        assert_eq!(policy.authorisers.len(), 1);
        assert_eq!(policy.decoy_ksf, vec![KsfParams::new(32768, 2, 1).unwrap(), KsfParams::recommended()]);
        assert_eq!(policy.delays, LoginDelays { free: 10, base_secs: 60, max_secs: 600 });
        // One key in 64 begins with '-' in base64url; it is still a key, not a flag.
        let hyphen_key = backup_api::ticket::public_key(&hyphen_seed());
        let hyphen_key = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, hyphen_key);
        assert!(hyphen_key.starts_with('-'));
        let cli = Cli::try_parse_from([
            "backup-server",
            "--login-authoriser-key",
            &hyphen_key,
            "--login-authoriser-key",
            &key,
        ])
        .unwrap();
        assert_eq!(cli.settings.login_policy().unwrap().authorisers.len(), 2);
        let bad_key = Cli::try_parse_from(["backup-server", "--login-authoriser-key", "nope"]).unwrap();
        assert!(bad_key.settings.login_policy().unwrap_err().contains("\"nope\""));
        let bad_ksf = Cli::try_parse_from(["backup-server", "--decoy-ksf", "1:1:1"]).unwrap();
        assert!(bad_ksf.settings.login_policy().unwrap_err().contains("1:1:1"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(&file, format!("login_authoriser_keys = [\"{key}\"]\ndecoy_ksf = [\"16384:1:1\"]\n")).unwrap();
        let cli = Cli::try_parse_from(["backup-server", "--config", file.to_str().unwrap()]).unwrap();
        let policy = cli.settings.with_config_file().unwrap().login_policy().unwrap();
        assert_eq!(policy.authorisers.len(), 1);
        assert_eq!(policy.decoy_ksf, vec![KsfParams::new(16384, 1, 1).unwrap()]);
    }

    #[test]
    fn defaults() {
        let settings = Cli::try_parse_from(["backup-server"]).unwrap().settings;
        assert_eq!(settings.listen().to_string(), "127.0.0.1:8371");
        assert_eq!(settings.setup_file(), PathBuf::from("backup-server-data/opaque-setup.key"));
    }
}
