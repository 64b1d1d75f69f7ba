//! One function per command. Each unlocks (if needed), calls the library, and prints.

use std::io::Write;
use std::sync::Arc;

use serde_json::json;
use vault_core::{
    CreateOptions, KdfParams, MediaId, MediaImport, MessageId, NewMessage, RetentionPolicy, SlotId, SlotMethod,
    SlotSecret, SoftwareKeyWrapper, Vault,
};

use crate::cli::{Cli, Command, KdfArgs, KeyCommand, MediaCommand, MsgCommand, RetentionCommand};
use crate::context::Context;
use crate::failure::Failure;
use crate::input::Input;
use crate::render;

/// Events the dashboard reads to group, and the grouped lines it shows.
const STATUS_EVENTS_SCANNED: usize = 500;
const STATUS_EVENT_LINES: usize = 10;

/// Messages per transaction for `msg add --stdin`.
const BULK_BATCH: usize = 1000;

/// Runs the parsed command line.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Failure> {
    let dir = cli.vault.ok_or_else(|| Failure::usage("no vault directory: pass --vault DIR or set VAULT_DIR"))?;
    let tpm = crate::tpm::TpmOptions {
        enabled: cli.tpm,
        pin_stdin: cli.tpm_pin_stdin,
        tcti: cli.tpm_tcti,
        pcrs: cli.tpm_pcrs,
    };
    let mut ctx = Context::new(dir, cli.device_key, cli.json, Input::new(cli.passphrase_stdin), tpm, out);
    match cli.command {
        Command::Init(kdf) => init(&mut ctx, kdf),
        Command::Msg(MsgCommand::Add { conversation, sender, body, stdin, expires_in }) => {
            msg_add(&mut ctx, &conversation, &sender, body, stdin, expires_in)
        }
        Command::Msg(MsgCommand::List { conversation, limit, before }) => {
            msg_list(&mut ctx, &conversation, limit, before)
        }
        Command::Msg(MsgCommand::Rm { ids }) => msg_rm(&mut ctx, &ids),
        Command::Search { query, limit } => search(&mut ctx, &query, limit),
        Command::Status => status(&mut ctx),
        Command::Key(command) => key(&mut ctx, command),
        Command::Verify => verify(&mut ctx),
        Command::Media(command) => media(&mut ctx, command),
        Command::Retention(command) => retention(&mut ctx, command),
        Command::Backup(command) => crate::backup::run(&mut ctx, command),
        Command::Restore {
            servers,
            account,
            recovery_code,
            recovery_code_stdin,
            device_name,
            key_only,
            accept_unverified_freshness,
        } => {
            let code = crate::recovery::CodeSource::new(recovery_code, recovery_code_stdin);
            let device_name = device_name.unwrap_or_else(crate::cli::default_device_name);
            let how = crate::recovery::RestoreHow { device_name: &device_name, key_only, accept_unverified_freshness };
            crate::recovery::restore(&mut ctx, &servers, &account, code, how)
        }
    }
}

fn init(ctx: &mut Context<'_>, kdf: KdfArgs) -> Result<(), Failure> {
    // The TPM PIN, if it comes from stdin, is the first line: connect before the passphrase.
    let tpm = if ctx.tpm.enabled { Some(ctx.tpm_wrapper()?) } else { None };
    let passphrase = ctx.input.passphrase()?;
    let wrapper: Option<Arc<dyn vault_core::KeyWrapper>> = match (&ctx.device_key, tpm) {
        (Some(path), _) => {
            Some(Arc::new(SoftwareKeyWrapper::open_or_create(path).map_err(vault_core::Error::KeyWrapper)?))
        }
        (None, Some(tpm)) => Some(tpm),
        (None, None) => None,
    };
    let options = CreateOptions { kdf: kdf.params(), wrapper: wrapper.as_deref() };
    let created = Vault::create(&ctx.dir, &passphrase, options);
    let mut vault = if ctx.tpm.enabled { created.map_err(crate::tpm::failure)? } else { created? };
    let slots = vault.keys().list();
    if ctx.json {
        let value = json!({
            "vault": ctx.dir.display().to_string(),
            "slots": slots.iter().map(render::slot_json).collect::<Vec<_>>(),
        });
        return ctx.print_json(&value);
    }
    ctx.print(format!("created vault in {}", ctx.dir.display()))?;
    for slot in &slots {
        ctx.print(format!("  {}", render::slot_line(slot)))?;
    }
    Ok(())
}

fn msg_add(
    ctx: &mut Context<'_>,
    conversation: &str,
    sender: &str,
    body: Option<String>,
    from_stdin: bool,
    expires_in: Option<u64>,
) -> Result<(), Failure> {
    let mut vault = ctx.unlock()?;
    let make = |body: String| {
        let mut message = NewMessage::new(conversation, sender, body);
        if let Some(secs) = expires_in {
            let ms = i64::try_from(secs).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
            message.expires_at = Some(message.sent_at.saturating_add(ms));
        }
        message
    };
    if !from_stdin {
        let body = body.ok_or_else(|| Failure::usage("--body or --stdin is required"))?;
        let id = vault.messages().add(&make(body))?;
        return if ctx.json { ctx.print_json(&json!({ "id": id.0 })) } else { ctx.print(id.0) };
    }
    let mut added = 0usize;
    let mut batch = Vec::with_capacity(BULK_BATCH);
    let mut lines = ctx.input.lines();
    loop {
        let line = lines.next();
        let end = line.is_none();
        if let Some(line) = line {
            let line = line.map_err(|e| Failure::usage(format!("cannot read stdin: {}", e.kind())))?;
            batch.push(make(line));
        }
        if batch.len() == BULK_BATCH || (end && !batch.is_empty()) {
            added += vault.messages().add_batch(&batch)?.len();
            batch.clear();
        }
        if end {
            break;
        }
    }
    drop(lines);
    if ctx.json { ctx.print_json(&json!({ "added": added })) } else { ctx.print(format!("added {added} messages")) }
}

fn msg_list(ctx: &mut Context<'_>, conversation: &str, limit: usize, before: Option<i64>) -> Result<(), Failure> {
    let mut vault = ctx.unlock()?;
    let messages = vault.messages().list_before(conversation, limit, before.map(MessageId))?;
    if ctx.json {
        return ctx.print_json(&json!({ "messages": messages }));
    }
    for m in &messages {
        ctx.print(format!("#{} [{}] {}: {}", m.id.0, render::local_time(m.sent_at), m.sender, m.body))?;
    }
    Ok(())
}

fn msg_rm(ctx: &mut Context<'_>, ids: &[i64]) -> Result<(), Failure> {
    let mut vault = ctx.unlock()?;
    let ids: Vec<MessageId> = ids.iter().copied().map(MessageId).collect();
    let report = vault.messages().delete_batch(&ids)?;
    if ctx.json {
        return ctx.print_json(&json!({ "deleted": { "messages": report.messages, "media": report.media } }));
    }
    let mut line = format!("deleted {} message{}", report.messages, if report.messages == 1 { "" } else { "s" });
    if report.media > 0 {
        let items = if report.media == 1 { "item" } else { "items" };
        line.push_str(&format!(" and {} media {items} attached only to them", report.media));
    }
    ctx.print(line)
}

fn search(ctx: &mut Context<'_>, query: &str, limit: usize) -> Result<(), Failure> {
    let mut vault = ctx.unlock()?;
    let hits = vault.messages().search(query, limit)?;
    if ctx.json {
        return ctx.print_json(&json!({ "hits": hits }));
    }
    for hit in &hits {
        let m = &hit.message;
        ctx.print(format!(
            "#{} [{}] {} / {}: {}",
            m.id.0,
            render::local_time(m.sent_at),
            m.conversation,
            m.sender,
            m.body
        ))?;
    }
    Ok(())
}

fn status(ctx: &mut Context<'_>) -> Result<(), Failure> {
    let vault = ctx.unlock()?;
    let s = vault.status()?;
    let recovery = vault.recovery()?.status()?;
    if ctx.json {
        let value = json!({
            "vault": ctx.dir.display().to_string(),
            "encryption": {
                "database": "sqlcipher",
                "cipher_version": s.cipher.cipher_version,
                "cipher_provider": s.cipher.cipher_provider,
                "cipher_compatibility": s.cipher.compatibility,
                "database_key": "raw 256-bit key derived from the vault root key",
            },
            "schema_version": s.schema_version,
            "slots": s.slots.iter().map(render::slot_json).collect::<Vec<_>>(),
            "hardware_backed_slots": s.slots.iter().filter(|slot| matches!(slot.method, SlotMethod::KeyWrapper { hardware_backed: true, .. })).count(),
            "unlocked_by": s.unlocked_by.0,
            "counts": {
                "conversations": s.conversations,
                "messages": s.messages,
                "media_items": s.media_items,
                "media_bytes": s.media_bytes,
                "app_secrets": s.app_secrets,
                "security_events": s.security_events,
            },
            "retention": s.retention,
            "media_encryption": "XChaCha20-Poly1305, 64 KiB segments, one random key per item",
            "recent_events": s.recent_events,
            "recovery": recovery.as_ref().map(|r| json!({
                "account": r.account,
                "policy": r.policy.describe(),
                "single_provider": r.policy.single_provider(),
                "servers": r.servers,
                "safety_number": r.safety_number,
            })),
            "backup_holders": if recovery.is_some() { vault.recovery()?.last_holders()? } else { Vec::new() },
            "recovery_attempts": if recovery.is_some() { render::recovery_attempts(&recovery_events(&vault)?) } else { Vec::new() },
        });
        return ctx.print_json(&value);
    }
    ctx.print(format!("Vault        {}", ctx.dir.display()))?;
    ctx.print(format!(
        "Encryption   SQLCipher {} ({}), compatibility {}, raw 256-bit key derived from the vault root key",
        s.cipher.cipher_version, s.cipher.cipher_provider, s.cipher.compatibility
    ))?;
    ctx.print("Key slots")?;
    for slot in &s.slots {
        ctx.print(format!("  {}", render::slot_line(slot)))?;
    }
    ctx.print(format!("Unlocked by  slot {}", s.unlocked_by))?;
    ctx.print(format!(
        "Contents     {} conversations, {} messages, {} media items ({} bytes), {} app secrets",
        s.conversations, s.messages, s.media_items, s.media_bytes, s.app_secrets
    ))?;
    ctx.print("Media        XChaCha20-Poly1305, 64 KiB segments, one random key per item")?;
    match &recovery {
        Some(r) => {
            ctx.print(format!(
                "Recovery     account {}, {} via {}",
                r.account,
                r.policy.describe(),
                r.servers.join(", ")
            ))?;
            if r.policy.single_provider() {
                ctx.print(
                    "             WARNING: one provider alone can recover the backup key (single-provider mode)",
                )?;
            }
            ctx.print(format!("Safety no.   {}", r.safety_number))?;
            for holder in vault.recovery()?.last_holders()? {
                ctx.print(format!(
                    "Backup copy  {} (checked {})",
                    crate::backup::holder_line(&holder.server, holder.generation, holder.missing),
                    render::local_time(holder.checked_at)
                ))?;
            }
            let attempts = render::recovery_attempts(&recovery_events(&vault)?);
            if attempts.is_empty() {
                ctx.print(format!(
                    "Recovery attempts  none seen in the last {RECOVERY_ATTEMPT_DAYS} days (read at each backup run)"
                ))?;
            } else {
                ctx.print(format!("Recovery attempts at the guardians, last {RECOVERY_ATTEMPT_DAYS} days"))?;
                for line in attempts {
                    ctx.print(format!("  {line}"))?;
                }
            }
        }
        None => ctx.print("Recovery     not set up (`vault backup setup`)")?,
    }
    let age = s.retention.max_age_secs.map_or("none".to_owned(), |secs| format!("{} days", secs / 86_400));
    let count = s.retention.max_messages.map_or("none".to_owned(), |n| n.to_string());
    ctx.print(format!("Retention    max age {age}, max messages {count}"))?;
    // Runs of one kind (routine unlocks) are folded into one line each, so a failed unlock or a
    // slot change among them stays visible; `--json` keeps the raw events.
    let events = vault.security_events(STATUS_EVENTS_SCANNED)?;
    let groups = render::group_events(&events);
    ctx.print(format!("Security events ({} in total, newest first, repeats grouped)", s.security_events))?;
    for group in groups.iter().take(STATUS_EVENT_LINES) {
        ctx.print(format!("  {}", render::event_group_line(group)))?;
    }
    Ok(())
}

/// How far back `vault status` tallies the guardians' account events.
const RECOVERY_ATTEMPT_DAYS: i64 = 30;

/// The guardians' account events of the last [`RECOVERY_ATTEMPT_DAYS`] days in the
/// security-event log.
fn recovery_events(vault: &Vault) -> Result<Vec<vault_core::SecurityEvent>, Failure> {
    let since = jiff::Timestamp::now().as_millisecond() - RECOVERY_ATTEMPT_DAYS * 86_400_000;
    let events = vault.security_events(STATUS_EVENTS_SCANNED)?;
    Ok(events.into_iter().filter(|e| e.at >= since && e.kind.as_str().starts_with("guardian_")).collect())
}

fn key(ctx: &mut Context<'_>, command: KeyCommand) -> Result<(), Failure> {
    match command {
        KeyCommand::List => {
            let slots = Vault::inspect_slots(&ctx.dir)?;
            if ctx.json {
                return ctx.print_json(&json!({ "slots": slots.iter().map(render::slot_json).collect::<Vec<_>>() }));
            }
            for slot in &slots {
                ctx.print(render::slot_line(slot))?;
            }
            Ok(())
        }
        KeyCommand::AddPassphrase(kdf) => {
            let mut vault = ctx.unlock()?;
            let new = ctx.input.new_passphrase()?;
            let id = vault.keys().add_passphrase(&new, kdf.params())?;
            report_slot(ctx, "added", id)
        }
        KeyCommand::AddDeviceKey { file } => {
            let mut vault = ctx.unlock()?;
            let wrapper = SoftwareKeyWrapper::open_or_create(&file).map_err(vault_core::Error::KeyWrapper)?;
            let id = vault.keys().add_wrapper(&wrapper)?;
            report_slot(ctx, "added", id)
        }
        KeyCommand::AddTpm => {
            // Connect (and read the PIN) before the unlock reads a passphrase.
            let wrapper = ctx.tpm_wrapper()?;
            let mut vault = ctx.unlock()?;
            let id = vault.keys().add_wrapper(&*wrapper).map_err(crate::tpm::failure)?;
            report_slot(ctx, "added", id)
        }
        KeyCommand::ChangePassphrase { slot, kdf } => change_passphrase(ctx, slot, kdf.params()),
        KeyCommand::RemoveSlot { id } => {
            let mut vault = ctx.unlock()?;
            vault.keys().remove(SlotId(id))?;
            report_slot(ctx, "removed", SlotId(id))
        }
        KeyCommand::Rotate { root: true } => rotate_root(ctx),
        KeyCommand::Rotate { root: false } if ctx.tpm.enabled => rotate_tpm(ctx),
        KeyCommand::Rotate { root: false } => rotate_device_key(ctx),
    }
}

fn rotate_root(ctx: &mut Context<'_>) -> Result<(), Failure> {
    let (mut vault, passphrase, wrapper): (_, _, Option<Arc<dyn vault_core::KeyWrapper>>) = match ctx.device_key.clone()
    {
        Some(path) => {
            let (vault, wrapper) = ctx.unlock_with_device_key(&path)?;
            // The passphrase is optional here: needed only if the vault has a passphrase slot.
            let has_source = ctx.input.has_passphrase_source();
            let passphrase = if has_source { Some(ctx.input.passphrase()?) } else { None };
            (vault, passphrase, Some(Arc::new(wrapper)))
        }
        None if ctx.tpm.enabled => {
            let (vault, wrapper) = ctx.unlock_with_tpm()?;
            let has_source = ctx.input.has_passphrase_source();
            let passphrase = if has_source { Some(ctx.input.passphrase()?) } else { None };
            (vault, passphrase, Some(wrapper))
        }
        None => {
            let passphrase = ctx.input.passphrase()?;
            let vault = Vault::unlock_with_passphrase(&ctx.dir, &passphrase)?;
            (vault, Some(passphrase), None)
        }
    };
    // With --passphrase-stdin, further lines are the passphrases of other passphrase slots.
    let extra = ctx.input.remaining_passphrases()?;
    let mut others = Vec::new();
    if let Some(p) = &passphrase {
        others.push(SlotSecret::Passphrase(p));
    }
    others.extend(extra.iter().map(SlotSecret::Passphrase));
    if let Some(w) = &wrapper {
        others.push(SlotSecret::Wrapper(&**w));
    }
    let rotated = vault.keys().rotate_root_key(&others);
    if ctx.tpm.enabled {
        rotated.map_err(crate::tpm::failure)?
    } else {
        rotated?
    };
    let slots = vault.keys().list().len();
    if ctx.json {
        ctx.print_json(&json!({ "rotated": "root", "slots_resealed": slots }))
    } else {
        ctx.print(format!("rotated the vault root key; re-keyed the database and re-sealed {slots} key slots"))
    }
}

/// Re-seals every slot this TPM opens under new TPM objects (fresh KEKs, the current PIN and
/// --tpm-pcrs): for a new PIN or PCR policy, or after a PCR change the old policy allowed.
fn rotate_tpm(ctx: &mut Context<'_>) -> Result<(), Failure> {
    let (mut vault, wrapper) = ctx.unlock_with_tpm()?;
    let ids = vault.keys().rotate_wrapper_key(&*wrapper, &*wrapper).map_err(crate::tpm::failure)?;
    let ids: Vec<u32> = ids.iter().map(|id| id.0).collect();
    if ctx.json {
        ctx.print_json(&json!({ "rotated": "tpm", "slots": ids }))
    } else {
        ctx.print(format!("re-sealed the TPM slot(s) {ids:?} under new TPM keys"))
    }
}

fn rotate_device_key(ctx: &mut Context<'_>) -> Result<(), Failure> {
    let path = ctx
        .device_key
        .clone()
        .ok_or_else(|| Failure::usage("give the device key to rotate with --device-key, or --tpm (or use --root)"))?;
    let (mut vault, current) = ctx.unlock_with_device_key(&path)?;
    let ids = vault.rotate_key_file(&path, &current)?;
    let ids: Vec<u32> = ids.iter().map(|id| id.0).collect();
    if ctx.json {
        ctx.print_json(&json!({ "rotated": "device_key", "slots": ids }))
    } else {
        ctx.print(format!("rotated the device key; re-wrapped slot(s) {ids:?}"))
    }
}

fn media(ctx: &mut Context<'_>, command: MediaCommand) -> Result<(), Failure> {
    match command {
        MediaCommand::Add { file, conversation, message } => {
            let mut vault = ctx.unlock()?;
            let place = MediaImport { conversation: conversation.as_deref(), message: message.map(MessageId) };
            let id = vault.media().import_file(&file, place)?;
            if ctx.json { ctx.print_json(&json!({ "id": id })) } else { ctx.print(id) }
        }
        MediaCommand::Get { id, out, offset, length } => {
            let mut vault = ctx.unlock()?;
            let id = vault.media().resolve_prefix(&id)?;
            let written = vault.media().export(&id, &out, offset, length)?;
            if ctx.json {
                ctx.print_json(&json!({ "bytes": written }))
            } else {
                ctx.print(format!("wrote {written} bytes to {}", out.display()))
            }
        }
        MediaCommand::Rm { id } => {
            let mut vault = ctx.unlock()?;
            if !vault.media().delete(&MediaId::parse(&id)?)? {
                return Err(vault_core::Error::NotFound(format!("media {id}")).into());
            }
            if ctx.json { ctx.print_json(&json!({ "deleted": id })) } else { ctx.print(format!("deleted media {id}")) }
        }
        MediaCommand::List => {
            let mut vault = ctx.unlock()?;
            let items = vault.media().list()?;
            if ctx.json {
                return ctx.print_json(&json!({ "media": items }));
            }
            for item in &items {
                let messages: Vec<String> = item.messages.iter().map(|m| m.0.to_string()).collect();
                ctx.print(format!(
                    "{}  {:>12} bytes  [{}]  {}  messages: {}",
                    item.id,
                    item.length,
                    render::local_time(item.created_at),
                    item.conversation.as_deref().unwrap_or("-"),
                    if messages.is_empty() { "-".to_owned() } else { messages.join(",") }
                ))?;
            }
            Ok(())
        }
    }
}

fn retention(ctx: &mut Context<'_>, command: RetentionCommand) -> Result<(), Failure> {
    let mut vault = ctx.unlock()?;
    let only_show = matches!(command, RetentionCommand::Show);
    let mut confirmation = None;
    match command {
        RetentionCommand::Show => {}
        RetentionCommand::Set { max_age_days, max_messages } => {
            let mut policy = vault.retention().policy()?;
            if let Some(days) = max_age_days {
                policy.max_age_secs = (days > 0).then(|| days.saturating_mul(86_400));
            }
            if let Some(count) = max_messages {
                policy.max_messages = (count > 0).then_some(count);
            }
            vault.retention().set_policy(&policy)?;
        }
        RetentionCommand::Expiry { conversation, seconds } => {
            vault.retention().set_conversation_expiry(&conversation, (seconds > 0).then_some(seconds))?;
            confirmation = Some(if seconds > 0 {
                format!("messages in {conversation} now expire after {}", render::duration(seconds))
            } else {
                format!("messages in {conversation} no longer expire")
            });
        }
        RetentionCommand::Purge => {}
    }
    // Unlock already purged what was due; `show` only reports, the others apply the new rules.
    let purged = if only_show { Default::default() } else { vault.retention().purge()? };
    let at_unlock = vault.open_report().purged;
    let policy: RetentionPolicy = vault.retention().policy()?;
    let messages = purged.messages + at_unlock.messages;
    let media = purged.media + at_unlock.media;
    let expiries = vault.retention().conversation_expiries()?;
    if ctx.json {
        return ctx.print_json(&json!({
            "policy": policy,
            "conversation_expiries": expiries,
            "purged": { "messages": messages, "media": media },
        }));
    }
    if let Some(line) = confirmation {
        ctx.print(line)?;
    }
    let age = policy.max_age_secs.map_or("none".to_owned(), |s| format!("{} days", s / 86_400));
    let count = policy.max_messages.map_or("none".to_owned(), |n| n.to_string());
    ctx.print(format!("retention: max age {age}, max messages {count}"))?;
    if expiries.is_empty() {
        ctx.print("disappearing messages: none")?;
    } else {
        ctx.print("disappearing messages:")?;
        for e in &expiries {
            ctx.print(format!("  {}  after {}", e.conversation, render::duration(e.expiry_secs)))?;
        }
    }
    ctx.print(format!("purged {messages} messages and {media} media items"))
}

fn change_passphrase(ctx: &mut Context<'_>, slot: Option<u32>, kdf: KdfParams) -> Result<(), Failure> {
    let mut vault = ctx.unlock()?;
    let id = match slot {
        Some(id) => SlotId(id),
        None if ctx.device_key.is_none() && !ctx.tpm.enabled => vault.unlocked_by(),
        None => {
            return Err(Failure::usage("unlocked with a device key or TPM: name the passphrase slot with --slot"));
        }
    };
    let new = ctx.input.new_passphrase()?;
    vault.keys().change_passphrase(id, &new, kdf)?;
    report_slot(ctx, "changed", id)
}

fn report_slot(ctx: &mut Context<'_>, verb: &str, id: SlotId) -> Result<(), Failure> {
    if ctx.json { ctx.print_json(&json!({ verb: id.0 })) } else { ctx.print(format!("{verb} slot {id}")) }
}

fn verify(ctx: &mut Context<'_>) -> Result<(), Failure> {
    // A damaged slot file makes unlock fail with the uniform "authentication failed"; the
    // file holds no secret in the clear, so verify can say what is wrong with it first.
    match Vault::check_slot_file(&ctx.dir) {
        Ok(()) => {}
        Err(vault_core::Error::Integrity { problem, .. }) => {
            if ctx.json {
                ctx.print_json(&json!({ "ok": false, "checks": [{ "name": "key slots", "problems": [problem] }] }))?;
            } else {
                ctx.print(format!("DAMAGED  key slots: {problem}"))?;
            }
            return Err(Failure::integrity("the key-slot file is damaged"));
        }
        Err(other) => return Err(other.into()),
    }
    let vault = ctx.unlock()?;
    let report = vault.verify()?;
    if ctx.json {
        ctx.print_json(&json!({ "ok": report.is_ok(), "checks": report.checks }))?;
    } else {
        for check in &report.checks {
            if check.problems.is_empty() {
                ctx.print(format!("ok       {}", check.name))?;
            }
            for problem in &check.problems {
                ctx.print(format!("DAMAGED  {}: {problem}", check.name))?;
            }
        }
    }
    if report.is_ok() { Ok(()) } else { Err(Failure::integrity("the vault failed verification")) }
}
