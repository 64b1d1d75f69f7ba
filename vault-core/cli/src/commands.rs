//! One function per command. Each unlocks (if needed), calls the library, and prints.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;
use vault_core::{CreateOptions, KdfParams, NewMessage, SlotId, SlotMethod, SoftwareKeyWrapper, Vault};

use crate::cli::{Cli, Command, KdfArgs, KeyCommand, MsgCommand};
use crate::failure::{Failure, exit};
use crate::input::Input;
use crate::render;

/// Messages per transaction for `msg add --stdin`.
const BULK_BATCH: usize = 1000;

/// Everything a command needs: options, input, output.
struct Context<'a> {
    dir: PathBuf,
    device_key: Option<PathBuf>,
    json: bool,
    input: Input,
    out: &'a mut dyn Write,
}

impl Context<'_> {
    fn unlock(&mut self) -> Result<Vault, Failure> {
        match &self.device_key {
            Some(path) => {
                let wrapper = SoftwareKeyWrapper::open(path).map_err(vault_core::Error::KeyWrapper)?;
                Ok(Vault::unlock_with_wrapper(&self.dir, &wrapper)?)
            }
            None => {
                let passphrase = self.input.passphrase()?;
                Ok(Vault::unlock_with_passphrase(&self.dir, &passphrase)?)
            }
        }
    }

    fn print(&mut self, text: impl std::fmt::Display) -> Result<(), Failure> {
        writeln!(self.out, "{text}")
            .map_err(|e| Failure { code: exit::OTHER, message: format!("cannot write output: {}", e.kind()) })
    }

    fn print_json(&mut self, value: &serde_json::Value) -> Result<(), Failure> {
        self.print(value)
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Failure> {
    let dir = cli.vault.ok_or_else(|| Failure::usage("no vault directory: pass --vault DIR or set VAULT_DIR"))?;
    let mut ctx =
        Context { dir, device_key: cli.device_key, json: cli.json, input: Input::new(cli.passphrase_stdin), out };
    match cli.command {
        Command::Init(kdf) => init(&mut ctx, kdf),
        Command::Msg(MsgCommand::Add { conversation, sender, body, stdin }) => {
            msg_add(&mut ctx, &conversation, &sender, body, stdin)
        }
        Command::Msg(MsgCommand::List { conversation, limit }) => msg_list(&mut ctx, &conversation, limit),
        Command::Search { query, limit } => search(&mut ctx, &query, limit),
        Command::Status => status(&mut ctx),
        Command::Key(command) => key(&mut ctx, command),
        Command::Verify => verify(&mut ctx),
    }
}

fn init(ctx: &mut Context<'_>, kdf: KdfArgs) -> Result<(), Failure> {
    let passphrase = ctx.input.passphrase()?;
    let wrapper = match &ctx.device_key {
        Some(path) => Some(SoftwareKeyWrapper::open_or_create(path).map_err(vault_core::Error::KeyWrapper)?),
        None => None,
    };
    let options =
        CreateOptions { kdf: kdf.params(), wrapper: wrapper.as_ref().map(|w| w as &dyn vault_core::KeyWrapper) };
    let vault = Vault::create(&ctx.dir, &passphrase, options)?;
    let slots = vault.slots();
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
) -> Result<(), Failure> {
    let mut vault = ctx.unlock()?;
    if !from_stdin {
        let body = body.ok_or_else(|| Failure::usage("--body or --stdin is required"))?;
        let id = vault.add_message(&NewMessage::new(conversation, sender, body))?;
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
            batch.push(NewMessage::new(conversation, sender, line));
        }
        if batch.len() == BULK_BATCH || (end && !batch.is_empty()) {
            added += vault.add_messages(&batch)?.len();
            batch.clear();
        }
        if end {
            break;
        }
    }
    drop(lines);
    if ctx.json { ctx.print_json(&json!({ "added": added })) } else { ctx.print(format!("added {added} messages")) }
}

fn msg_list(ctx: &mut Context<'_>, conversation: &str, limit: usize) -> Result<(), Failure> {
    let vault = ctx.unlock()?;
    let messages = vault.messages(conversation, limit)?;
    if ctx.json {
        return ctx.print_json(&json!({ "messages": messages }));
    }
    for m in &messages {
        ctx.print(format!("#{} [{}] {}: {}", m.id.0, render::utc(m.sent_at), m.sender, m.body))?;
    }
    Ok(())
}

fn search(ctx: &mut Context<'_>, query: &str, limit: usize) -> Result<(), Failure> {
    let vault = ctx.unlock()?;
    let hits = vault.search(query, limit)?;
    if ctx.json {
        return ctx.print_json(&json!({ "hits": hits }));
    }
    for hit in &hits {
        let m = &hit.message;
        ctx.print(format!("#{} [{}] {} / {}: {}", m.id.0, render::utc(m.sent_at), m.conversation, m.sender, m.body))?;
    }
    Ok(())
}

fn status(ctx: &mut Context<'_>) -> Result<(), Failure> {
    let vault = ctx.unlock()?;
    let s = vault.status()?;
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
                "app_secrets": s.app_secrets,
                "security_events": s.security_events,
            },
            "recent_events": s.recent_events,
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
        "Contents     {} conversations, {} messages, {} app secrets",
        s.conversations, s.messages, s.app_secrets
    ))?;
    ctx.print(format!("Security events ({} in total, newest first)", s.security_events))?;
    for event in &s.recent_events {
        ctx.print(format!("  {}  {:<17} {}", render::utc(event.at), event.kind.as_str(), event.detail))?;
    }
    Ok(())
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
            let id = vault.add_passphrase_slot(&new, kdf.params())?;
            report_slot(ctx, "added", id)
        }
        KeyCommand::AddDeviceKey { file } => {
            let mut vault = ctx.unlock()?;
            let wrapper = SoftwareKeyWrapper::open_or_create(&file).map_err(vault_core::Error::KeyWrapper)?;
            let id = vault.add_wrapper_slot(&wrapper)?;
            report_slot(ctx, "added", id)
        }
        KeyCommand::ChangePassphrase { slot, kdf } => change_passphrase(ctx, slot, kdf.params()),
        KeyCommand::RemoveSlot { id } => {
            let mut vault = ctx.unlock()?;
            vault.remove_slot(SlotId(id))?;
            report_slot(ctx, "removed", SlotId(id))
        }
    }
}

fn change_passphrase(ctx: &mut Context<'_>, slot: Option<u32>, kdf: KdfParams) -> Result<(), Failure> {
    let mut vault = ctx.unlock()?;
    let id = match slot {
        Some(id) => SlotId(id),
        None if ctx.device_key.is_none() => vault.unlocked_by(),
        None => return Err(Failure::usage("unlocked with a device key: name the passphrase slot with --slot")),
    };
    let new = ctx.input.new_passphrase()?;
    vault.change_passphrase(id, &new, kdf)?;
    report_slot(ctx, "changed", id)
}

fn report_slot(ctx: &mut Context<'_>, verb: &str, id: SlotId) -> Result<(), Failure> {
    if ctx.json { ctx.print_json(&json!({ verb: id.0 })) } else { ctx.print(format!("{verb} slot {id}")) }
}

fn verify(ctx: &mut Context<'_>) -> Result<(), Failure> {
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
