//! `vault backup …`: log in to a backup server, back up, list, verify, prune, and restore.

use std::path::Path;

use serde_json::json;
use vault_core::backup::{BackupRootKey, DirTransport, Transport};
use vault_core::recovery::{GuardianBackupReport, GuardianEventsReport};
use vault_core::{RestoreOptions, Vault};

use crate::cli::{BackupCommand, BackupTarget};
use crate::context::Context;
use crate::failure::{Failure, exit};
use crate::progress_bar::TerminalProgress;

/// Runs one `vault backup` command.
pub fn run(ctx: &mut Context<'_>, command: BackupCommand) -> Result<(), Failure> {
    match command {
        BackupCommand::Setup {
            servers,
            account,
            threshold,
            recovery_code: _,
            no_recovery_code,
            allow_single_provider,
            device_name,
        } => crate::recovery::setup(
            ctx,
            &servers,
            &account,
            threshold,
            no_recovery_code,
            allow_single_provider,
            &device_name.unwrap_or_else(crate::cli::default_device_name),
        ),
        BackupCommand::Password => crate::recovery::password(ctx),
        BackupCommand::RefreshShares | BackupCommand::NewRecoveryCode => crate::recovery::refresh(ctx),
        BackupCommand::Devices { revoke, revoke_this_device } => {
            crate::recovery::devices(ctx, revoke, revoke_this_device)
        }
        BackupCommand::Run(target) => {
            let vault = ctx.unlock()?;
            let bar = TerminalProgress::new("backing up", ctx.json);
            let progress = bar.as_ref().map(|b| b as &dyn vault_core::Progress);
            let mut recovery = vault.recovery()?;
            let guarded = if target.dir.is_none() && recovery.status()?.is_some() {
                recovery.backup(&crate::network::network(), progress)?
            } else {
                let transport = transport_for(&vault, &target)?;
                GuardianBackupReport {
                    backup: vault.backups()?.run(transport.as_ref(), progress)?,
                    head_copies_failed: Vec::new(),
                    holders: Vec::new(),
                    mirror_copied: 0,
                    mirror_problems: Vec::new(),
                    guardian_events: GuardianEventsReport::default(),
                }
            };
            drop(bar);
            if ctx.json {
                return ctx.print_report(&guarded);
            }
            let report = &guarded.backup;
            for failure in &guarded.head_copies_failed {
                ctx.print(format!("warning: the head record was not copied to {failure}"))?;
            }
            for problem in &guarded.mirror_problems {
                ctx.print(format!("warning: mirror: {problem}"))?;
            }
            for holder in &guarded.holders {
                ctx.print(holder_line(holder.server.as_str(), holder.generation, holder.missing))?;
            }
            print_guardian_events(ctx, &guarded.guardian_events, false)?;
            ctx.print(format!(
                "backup generation {}: uploaded {} bytes ({} new chunks, {} reused, {} packs; media {} new, {} reused) in {:.2} s",
                report.generation,
                report.uploaded_bytes,
                report.new_chunks,
                report.reused_chunks,
                report.packs,
                report.media_uploaded,
                report.media_reused,
                report.duration.as_secs_f64()
            ))
        }
        BackupCommand::Deleted { restore } => {
            let vault = ctx.unlock()?;
            let password = ctx.input.backup_password()?;
            let mut recovery = vault.recovery()?;
            if restore {
                let restored = recovery.restore_deleted(&crate::network::network(), &password)?;
                if ctx.json {
                    return ctx.print_json(&json!({ "restored": restored }));
                }
                return ctx.print(format!("restored {restored} deleted objects"));
            }
            let deleted = recovery.deleted_objects(&crate::network::network(), &password)?;
            if ctx.json {
                let objects: Vec<_> = deleted
                    .iter()
                    .map(|(server, d)| json!({ "server": server, "id": d.id, "size": d.size, "deleted_at": d.deleted_at_secs, "purge_at": d.purge_at_secs }))
                    .collect();
                return ctx.print_json(&json!({ "objects": objects }));
            }
            ctx.print(format!("{} deleted objects kept for their grace period", deleted.len()))?;
            for (server, d) in &deleted {
                ctx.print(format!(
                    "  {server}  {}  {} bytes  deleted {}  purged {}",
                    d.id,
                    d.size,
                    crate::render::local_time_secs(d.deleted_at_secs),
                    crate::render::local_time_secs(d.purge_at_secs)
                ))?;
            }
            Ok(())
        }
        BackupCommand::Events => {
            let vault = ctx.unlock()?;
            let report = vault.recovery()?.fetch_guardian_events(&crate::network::network())?;
            if ctx.json {
                return ctx.print_report(&report);
            }
            print_guardian_events(ctx, &report, true)
        }
        BackupCommand::List(target) => {
            let vault = ctx.unlock()?;
            let transport = transport_for(&vault, &target)?;
            let snapshots = vault.backups()?.list(transport.as_ref())?;
            if ctx.json {
                return ctx.print_json(&json!({ "snapshots": snapshots }));
            }
            for s in snapshots {
                ctx.print(format!(
                    "generation {:>4}  created {}  export {} bytes  {} media",
                    s.generation,
                    crate::render::local_time(s.created_at),
                    s.export_bytes,
                    s.media_count
                ))?;
            }
            Ok(())
        }
        BackupCommand::Verify { target, read_data, read_data_subset } => {
            let fraction = match (read_data, read_data_subset) {
                (true, _) => 1.0,
                (false, Some(percent)) if (0.0..=100.0).contains(&percent) => percent / 100.0,
                (false, Some(_)) => return Err(Failure::usage("--read-data-subset is a percentage from 0 to 100")),
                (false, None) => 0.0,
            };
            let vault = ctx.unlock()?;
            let transport = transport_for(&vault, &target)?;
            let check = vault.backups()?.verify(transport.as_ref(), fraction)?;
            let holders = if target.dir.is_none() && vault.recovery()?.status()?.is_some() {
                vault.recovery()?.holders(&crate::network::network())?
            } else {
                Vec::new()
            };
            let incomplete = holders.iter().filter(|h| h.missing > 0 || h.generation.is_none()).count();
            if ctx.json {
                let mut value = serde_json::to_value(&check).unwrap_or_default();
                if let Some(object) = value.as_object_mut() {
                    object.insert("holders".into(), json!(holders));
                }
                ctx.print_json(&value)?;
            } else {
                for holder in &holders {
                    ctx.print(holder_line(&holder.server, holder.generation, holder.missing))?;
                }
                ctx.print(format!(
                    "generation {}: {} manifests chained, {} snapshots; read and authenticated {} of {} packs ({} %), {} chunks; {} media checked, {} read and authenticated ({} not held by this vault)",
                    check.generation,
                    check.manifests_checked,
                    check.snapshots,
                    check.packs_read,
                    check.packs_total,
                    fraction * 100.0,
                    check.chunks_authenticated,
                    check.media_checked,
                    check.media_authenticated,
                    check.media_without_key
                ))?;
                for problem in &check.problems {
                    ctx.print(format!("problem: {problem}"))?;
                }
            }
            if !check.problems.is_empty() {
                Err(Failure::integrity(format!("the backup has {} problems", check.problems.len())))
            } else if incomplete > 0 {
                Err(Failure::integrity(format!(
                    "{incomplete} of the backup's holders do not fully hold its newest generation (the next backup run repairs them)"
                )))
            } else {
                Ok(())
            }
        }
        BackupCommand::Prune { target, keep } => {
            let vault = ctx.unlock()?;
            let report = if target.dir.is_none() && vault.recovery()?.status()?.is_some() {
                let password = ctx.input.backup_password()?;
                vault.recovery()?.prune(&crate::network::network(), &password, keep)?
            } else {
                let transport = transport_for(&vault, &target)?;
                vault.backups()?.prune(transport.as_ref(), keep)?
            };
            if ctx.json {
                return ctx.print_report(&report);
            }
            let kept = generations(&report.kept_generations);
            if !report.rewritten {
                let what = match report.kept_generations.len() {
                    1 => format!("the one snapshot ({kept})"),
                    n => format!("all {n} snapshots ({kept})"),
                };
                return ctx.print(format!("nothing to remove; kept {what}; the backup was not rewritten"));
            }
            ctx.print(format!(
                "removed {} snapshots, kept {} ({kept}); deleted {} packs, repacked {}, deleted {} media; {} bytes freed",
                report.snapshots_removed,
                report.kept_generations.len(),
                report.packs_deleted,
                report.packs_repacked,
                report.media_deleted,
                report.bytes_freed
            ))?;
            ctx.print(format!(
                "wrote a new manifest and index as backup generation {} (it holds no new snapshot)",
                report.generation
            ))
        }
        BackupCommand::ExportKey { dangerous: _, file } => {
            let vault = ctx.unlock()?;
            let key = vault
                .backups()?
                .dangerous_export_key()?
                .ok_or_else(|| Failure::usage("this vault has no backup key yet: run `vault backup run` first"))?;
            write_key_file(&file, key.expose_secret())?;
            ctx.print(format!(
                "wrote the backup key to {} (anyone with it can read every backup of this vault)",
                file.display()
            ))
        }
        BackupCommand::Restore { backup_key_file, from_dir, server, account } => {
            let key = read_key_file(&backup_key_file)?;
            let transport: Box<dyn Transport> = match (from_dir, server, account) {
                (Some(dir), _, _) => Box::new(DirTransport::new(&dir).map_err(storage_failure)?),
                (None, Some(server), Some(account)) => {
                    let password = ctx.input.backup_password()?;
                    vault_core::recovery::password_transport(&crate::network::network(), &server, &account, &password)?
                }
                _ => return Err(Failure::usage("give --from-dir DIR, or --server URL and --account NAME")),
            };
            let passphrase = ctx.input.passphrase()?;
            let dir = ctx.dir.clone();
            let bar = TerminalProgress::new("restoring", ctx.json);
            let options = RestoreOptions {
                progress: bar.as_ref().map(|b| b as &dyn vault_core::Progress),
                ..RestoreOptions::default()
            };
            let report = vault_core::restore_backup(transport.as_ref(), &key, &dir, &passphrase, options)?;
            drop(bar);
            if ctx.json {
                return ctx.print_report(&report);
            }
            ctx.print(format!(
                "restored generation {} into {}: {} messages, {} media items ({} manifests chained, {} bytes downloaded)",
                report.generation,
                dir.display(),
                report.messages,
                report.media,
                report.manifests_checked,
                report.downloaded_bytes
            ))
        }
    }
}

/// "generation 3" or "generations 1, 2, 3", as `backup list` numbers snapshots.
fn generations(list: &[u64]) -> String {
    let joined: Vec<String> = list.iter().map(u64::to_string).collect();
    match list {
        [one] => format!("generation {one}"),
        _ => format!("generations {}", joined.join(", ")),
    }
}

fn storage_failure(e: vault_core::backup::TransportError) -> Failure {
    Failure { code: exit::SERVER_UNREACHABLE, message: format!("backup storage: {e}") }
}

/// Why a vault with guardians refuses `--dir`: a vault keeps one backup history (it remembers the
/// newest generation it wrote so that a rolled-back copy is detected), and that history is at the
/// guardians' data server.
const SECOND_HISTORY: &str = "this vault backs up to its guardian servers; a directory backup would start a second \
     history, and a vault keeps one (it remembers its newest generation to detect a rolled-back copy): \
     run `vault backup` commands without --dir";

fn transport_for(vault: &Vault, target: &BackupTarget) -> Result<Box<dyn Transport>, Failure> {
    if let Some(dir) = &target.dir {
        if vault.recovery()?.status()?.is_some() {
            return Err(Failure::usage(SECOND_HISTORY));
        }
        return Ok(Box::new(DirTransport::new(dir).map_err(storage_failure)?));
    }
    vault
        .recovery()?
        .data_transport(&crate::network::network())?
        .map(|t| t as Box<dyn Transport>)
        .ok_or_else(|| Failure::usage("no backup server: run `vault backup setup` first, or give --dir DIR"))
}

fn write_key_file(path: &Path, key: &[u8; 32]) -> Result<(), Failure> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Failure::usage(format!("cannot create {}: {}", path.display(), e.kind())))?;
    let mut hex = zeroize::Zeroizing::new(String::with_capacity(65));
    for byte in key {
        use std::fmt::Write as _;
        let _ = write!(hex, "{byte:02x}");
    }
    hex.push('\n');
    file.write_all(hex.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure { code: exit::OTHER, message: format!("cannot write {}: {}", path.display(), e.kind()) })
}

fn read_key_file(path: &Path) -> Result<BackupRootKey, Failure> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("cannot read {}: {}", path.display(), e.kind())))?,
    );
    let bytes = zeroize::Zeroizing::new(
        from_hex(text.trim()).ok_or_else(|| Failure::usage("the backup key file is not 64 hex digits"))?,
    );
    Ok(BackupRootKey::from_bytes(&bytes)?)
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..32).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()).collect()
}

/// Prints what reading the guardians' event logs added: a summary per guardian (and, when asked
/// for, each event), and a warning per guardian that could not be read.
fn print_guardian_events(ctx: &mut Context<'_>, report: &GuardianEventsReport, each: bool) -> Result<(), Failure> {
    for (url, reason) in &report.unread {
        ctx.print(format!("warning: could not read the account events at {url}: {reason}"))?;
    }
    if report.new_events.is_empty() {
        if each {
            ctx.print("no new events at the guardians")?;
        }
        return Ok(());
    }
    for line in crate::render::recovery_attempts(&report.new_events) {
        ctx.print(format!("guardian events: {line}"))?;
    }
    if each {
        for event in &report.new_events {
            ctx.print(format!(
                "  {}  {:<26} {}",
                crate::render::local_time(event.at),
                event.kind.as_str(),
                event.detail
            ))?;
        }
    }
    Ok(())
}

/// One line about a holder of the backup: whether it fully holds the newest generation.
pub(crate) fn holder_line(server: &str, generation: Option<u64>, missing: u64) -> String {
    match (generation, missing) {
        (Some(generation), _) => format!("holder {server}: fully holds generation {generation}"),
        (None, 0) => format!("holder {server}: its head is behind the newest generation"),
        (None, missing) => {
            format!("holder {server}: does not fully hold the newest generation ({missing} objects missing)")
        }
    }
}
