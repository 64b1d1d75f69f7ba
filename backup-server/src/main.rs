//! `backup-server`: serve, or run a maintenance command.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use backup_api::wire::AccountEventKind;
use backup_server::config::{Cli, Command, Settings};
use backup_server::records;
use backup_server::server::{self, StartError};
use backup_server::storage::{Change, StorageError};
use backup_server::{AppState, ServerSecrets, Storage};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
        Some(Command::ListDeleted { account }) => runtime.block_on(list_deleted(settings, &account)),
        Some(Command::TicketKeygen { out }) => ticket_keygen(&out),
        Some(Command::IssueTicket { signing_key, account, ttl_secs }) => issue_ticket(&signing_key, &account, ttl_secs),
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
    let mut limits = settings.limits().map_err(StartError)?;
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
    if limits.login.requires_ticket() {
        println!("login starts need a ticket from one of {} authoriser key(s)", limits.login.authorisers.len());
    }
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
            let mut record = records::parse_account(bytes, &path)?;
            record.failed_logins = 0;
            record.note(backup_server::state::now_secs(), AccountEventKind::Unlocked, false, None);
            Ok(Change::Write(records::encode(&record), true))
        })
        .await
        .map_err(|e| StartError(e.to_string()))?;
    if !found {
        return Err(StartError("no such account".into()));
    }
    println!("account {} unlocked: failed-login count and delay reset", hash.tag());
    Ok(())
}

/// Prints an account's deleted objects in their grace period: id, size, deleted at, purged at.
async fn list_deleted(settings: Settings, account: &str) -> Result<(), StartError> {
    let (secrets, storage, _lock) = open(&settings, server::Opener::Command("list-deleted"))?;
    let hash = secrets.account_hash(account);
    if storage.read(&records::record_path(&hash)).await.map_err(|e| StartError(e.to_string()))?.is_none() {
        return Err(StartError("no such account".into()));
    }
    let grace = settings.limits().map_err(StartError)?.deletion_grace.as_secs();
    let entries = backup_server::http::deleted_objects(&storage, &hash)
        .await
        .map_err(|e| StartError(format!("cannot list deleted objects: {}", e.message)))?;
    println!("account {}: {} deleted objects in their grace period", hash.tag(), entries.len());
    for (entry, size) in entries {
        println!("{}\t{size} bytes\tdeleted at {}\tpurged at {}", entry.id, entry.deleted_at, entry.deleted_at + grace);
    }
    Ok(())
}

/// Writes a new ticket-signing seed to `out` (0600, never over an existing file) and prints its
/// public key.
fn ticket_keygen(out: &std::path::Path) -> Result<(), StartError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    backup_server::random::fill(&mut seed[..]);
    let text = zeroize::Zeroizing::new(format!("{}\n", URL_SAFE_NO_PAD.encode(&seed[..])));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| StartError(format!("cannot create {}: {e}", out.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| StartError(format!("cannot write {}: {e}", out.display())))?;
    println!("{}", URL_SAFE_NO_PAD.encode(backup_api::ticket::public_key(&seed)));
    Ok(())
}

/// Prints a ticket for `account`, valid for `ttl_secs`, signed with the seed in `signing_key`.
fn issue_ticket(signing_key: &std::path::Path, account: &str, ttl_secs: u64) -> Result<(), StartError> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(signing_key)
            .map_err(|e| StartError(format!("cannot read {}: {e}", signing_key.display())))?,
    );
    let bad = || StartError(format!("{} does not hold a ticket-signing key", signing_key.display()));
    let bytes = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| bad())?);
    let seed: zeroize::Zeroizing<[u8; 32]> = zeroize::Zeroizing::new(bytes.as_slice().try_into().map_err(|_| bad())?);
    if ttl_secs == 0 || ttl_secs > backup_api::ticket::MAX_TICKET_LIFETIME_SECS {
        return Err(StartError(format!("--ttl-secs must be 1 to {}", backup_api::ticket::MAX_TICKET_LIFETIME_SECS)));
    }
    let mut nonce = [0u8; 16];
    backup_server::random::fill(&mut nonce);
    let expires_at = backup_server::state::now_secs() + ttl_secs;
    println!("{}", backup_api::ticket::issue(&seed, account, expires_at, nonce));
    Ok(())
}
