//! `backup-server`: serve, or run a maintenance command.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use backup_server::config::{Cli, Command, Settings};
use backup_server::records::{self, AccountRecord};
use backup_server::server::{self, StartError};
use backup_server::storage::{Change, StorageError};
use backup_server::{AppState, ServerSecrets, Storage};
use clap::Parser as _;

/// S3's limit for a single copy, which places staged uploads.
const S3_MAX_OBJECT: u64 = 5 << 30;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match cli.settings.with_config_file() {
        Ok(settings) => settings,
        Err(message) => return fail(&message),
    };
    init_logging(settings.log_format.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let outcome = match cli.command {
        None => runtime.block_on(run(settings)),
        Some(Command::UnlockAccount { account }) => runtime.block_on(unlock_account(settings, &account)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError(message)) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("backup-server: {message}");
    ExitCode::FAILURE
}

fn init_logging(format: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal (and not under NO_COLOR): logs sent to a file, a pipe or journald
    // carry no escape codes.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    if format == Some("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Opens the store and loads the setup. If either fails, the directories this created are removed
/// again.
fn open(
    settings: &Settings,
    opener: server::Opener,
) -> Result<(ServerSecrets, Storage, Option<server::DirLock>), StartError> {
    let mut created_dirs = server::CreatedDirs::default();
    if let Some(root) = server::local_store_root(settings) {
        created_dirs.note(&root);
    }
    if std::env::var_os("BACKUP_SERVER_SETUP").is_none()
        && let Some(parent) = settings.setup_file().parent()
    {
        created_dirs.note(parent);
    }
    if opener != server::Opener::Server {
        // A maintenance command never creates a setup: check it before the store.
        let (secrets, _) = server::load_secrets(settings, server::MissingSetup::Refuse)?;
        let (storage, lock) = server::open_store_for(settings, opener)?;
        created_dirs.keep();
        return Ok((secrets, storage, lock));
    }
    let (storage, lock) = server::open_store_for(settings, opener)?;
    let missing = if storage.kind() == backup_server::storage::BackendKind::S3 {
        server::MissingSetup::Refuse
    } else {
        server::MissingSetup::Create
    };
    let (secrets, created) = server::load_secrets(settings, missing)?;
    created_dirs.keep();
    if let Some(path) = created {
        println!("created a new OPAQUE server setup at {} (secret; back it up, keep it 0600)", path.display());
    }
    Ok((secrets, storage, lock))
}

async fn run(settings: Settings) -> Result<(), StartError> {
    let addr = settings.listen();
    if settings.tls_cert.is_some() != settings.tls_key.is_some() {
        return Err(StartError("TLS needs both tls_cert and tls_key".into()));
    }
    let tls = settings.tls_cert.is_some();
    server::check_plain_http(addr, tls, settings.insecure_http.unwrap_or(false))?;
    // Everything that can fail without touching the data directory comes first, so that a failed
    // start creates nothing there.
    let tls_config = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => Some(
            axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| StartError(format!("cannot load the TLS certificate or key: {e}")))?,
        ),
        _ => None,
    };
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| StartError(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr().map_err(|e| StartError(e.to_string()))?;
    let (secrets, storage, _lock) = open(&settings, server::Opener::Server)?;
    let scheme = if tls { "https" } else { "http" };
    println!("backup-server listening on {scheme}://{bound}");
    println!("store: {}", storage.description());
    println!("OPAQUE server key fingerprint: {}", server::key_fingerprint(&secrets));
    let mut limits = settings.limits();
    if storage.kind() == backup_server::storage::BackendKind::S3 && limits.max_object_bytes > S3_MAX_OBJECT {
        println!("max object size lowered to 5 GiB: large uploads are placed with one S3 copy, which S3 caps there");
        limits.max_object_bytes = S3_MAX_OBJECT;
    }
    let state = Arc::new(AppState::new(secrets, storage, limits));
    server::serve(state, listener, tls_config, server::termination_signal(), settings.shutdown_grace())
        .await
        .map_err(|e| StartError(format!("server failed: {e}")))?;
    println!("backup-server stopped");
    Ok(())
}

async fn unlock_account(settings: Settings, account: &str) -> Result<(), StartError> {
    let (secrets, storage, _lock) = open(&settings, server::Opener::Command("unlock-account"))?;
    let hash = secrets.account_hash(account);
    let path = records::record_path(&hash);
    let found = storage
        .update::<_, StorageError>(&path, |current| {
            let Some(bytes) = current else { return Ok(Change::Keep(false)) };
            let mut record: AccountRecord = records::parse(bytes, &path)?;
            record.failed_logins = 0;
            Ok(Change::Write(records::encode(&record), true))
        })
        .await
        .map_err(|e| StartError(e.to_string()))?;
    if !found {
        return Err(StartError("no such account".into()));
    }
    println!("account {} unlocked: failed-login counter reset", hash.tag());
    Ok(())
}
