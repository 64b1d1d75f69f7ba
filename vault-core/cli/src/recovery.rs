//! `vault backup setup|password|refresh-shares|new-recovery-code|devices` and `vault restore`:
//! recovery through guardian servers and the recovery code.

use serde_json::json;
use vault_core::recovery::{RecoveryCode, RecoveryPolicy, RecoverySetup};
use vault_core::{CreateOptions, GuardianRestore, Progress};

use crate::context::Context;
use crate::failure::Failure;
use crate::progress_bar::TerminalProgress;

/// Why a restored vault is not enrolled, from what the escrows record (the policy's number of
/// servers), never naming a server the user did not give.
fn not_enrolled_note(report: &vault_core::recovery::RecoveryReport) -> String {
    let reached = report.servers_used.len();
    let named = match &report.policy {
        Some(policy) => {
            format!("the recovery policy names {} guardian servers; {reached} were reached", policy.servers)
        }
        None => format!("{reached} guardian servers were reached, not every one the recovery policy names"),
    };
    format!("{named}: run `vault backup setup` on this vault to back up again")
}

/// `vault backup setup`.
#[allow(clippy::too_many_arguments)]
pub fn setup(
    ctx: &mut Context<'_>,
    servers: &[String],
    account: &str,
    threshold: Option<u8>,
    no_recovery_code: bool,
    allow_single_provider: bool,
    device_name: &str,
) -> Result<(), Failure> {
    let policy = RecoveryPolicy::new(servers.len(), threshold, !no_recovery_code, allow_single_provider)?;
    let vault = ctx.unlock()?;
    let password = ctx.input.backup_password()?;
    let setup = RecoverySetup { servers, account, policy, device_name };
    let report = vault.recovery()?.setup(&crate::network::network(), &setup, &password)?;
    if ctx.json {
        return ctx.print_json(&json!({
            "policy": report.policy.describe(),
            "threshold": report.policy.threshold,
            "shares": report.policy.shares(),
            "single_provider": report.policy.single_provider(),
            "servers": servers,
            "recovery_code": report.recovery_code.as_ref().map(RecoveryCode::expose_secret),
            "safety_number": report.safety_number,
        }));
    }
    ctx.print(format!("recovery set up for account {account}: {}", report.policy.describe()))?;
    if report.policy.single_provider() {
        ctx.print("warning: one provider alone can recover the backup key (weaker mode, as requested)")?;
    }
    if let Some(code) = &report.recovery_code {
        ctx.print("recovery code (shown only this once; write it down and keep it offline):")?;
        ctx.print(format!("  {}", code.expose_secret()))?;
    }
    ctx.print(format!("safety number: {}", report.safety_number))
}

/// Where `vault restore` takes the recovery code from.
pub enum CodeSource {
    /// None given.
    None,
    /// VAULT_RECOVERY_CODE (or, deprecated and hidden from the help, `--recovery-code`).
    Given(String),
    /// A line of standard input (`--recovery-code-stdin`).
    Stdin,
}

impl CodeSource {
    /// The source per the parsed arguments.
    pub fn new(code: Option<String>, stdin: bool) -> Self {
        match (code, stdin) {
            (_, true) => Self::Stdin,
            (Some(code), false) => {
                // Clap takes the variable when no argument is given: a code that differs from it
                // (or without it) came from argv.
                if std::env::var("VAULT_RECOVERY_CODE").ok().as_deref() != Some(code.as_str()) {
                    eprintln!(
                        "vault: warning: --recovery-code on the command line is deprecated (other users \
                         and the shell history can see it); set VAULT_RECOVERY_CODE or use --recovery-code-stdin"
                    );
                }
                Self::Given(code)
            }
            (None, false) => Self::None,
        }
    }
}

/// How `vault restore` runs.
pub struct RestoreHow<'a> {
    /// This device's name at the guardians.
    pub device_name: &'a str,
    /// Recover and check the key only.
    pub key_only: bool,
    /// Restore a backup whose freshness no guardian but the data server attests.
    pub accept_unverified_freshness: bool,
}

/// `vault restore`.
pub fn restore(
    ctx: &mut Context<'_>,
    servers: &[String],
    account: &str,
    code: CodeSource,
    how: RestoreHow<'_>,
) -> Result<(), Failure> {
    let RestoreHow { device_name, key_only, accept_unverified_freshness } = how;
    let password = ctx.input.backup_password()?;
    // With --passphrase-stdin the new vault's passphrase is the line after the password; the
    // code comes after both.
    let passphrase = if key_only { None } else { Some(ctx.input.passphrase()?) };
    let code = match code {
        CodeSource::None => None,
        CodeSource::Given(text) => Some(RecoveryCode::new(text)),
        CodeSource::Stdin => Some(RecoveryCode::new(ctx.input.recovery_code()?)),
    };
    let network = crate::network::network();
    let Some(passphrase) = passphrase else {
        let (_, report) = vault_core::recover_key(&network, servers, account, &password, code.as_ref())?;
        if ctx.json {
            return ctx.print_report(&report);
        }
        return ctx.print(format!(
            "recovered and checked the backup key in {:.2} s (servers used: {}; recovery code used: {})",
            report.duration.as_secs_f64(),
            report.servers_used.join(", "),
            report.recovery_code_used
        ));
    };
    let dir = ctx.dir.clone();
    let bar = TerminalProgress::new("restoring", ctx.json);
    let request = GuardianRestore {
        servers,
        account,
        password: &password,
        code: code.as_ref(),
        device_name,
        accept_unverified_freshness,
    };
    let report = vault_core::restore_from_guardians(
        &network,
        &request,
        &dir,
        &passphrase,
        CreateOptions::default(),
        bar.as_ref().map(|b| b as &dyn Progress),
    )
    .map_err(|e| match e {
        vault_core::Error::Integrity { problem, .. }
            if problem.starts_with("no guardian other than the data server") =>
        {
            Failure::integrity(format!(
                "{problem} (--accept-unverified-freshness restores it anyway, marked unverified)"
            ))
        }
        other => other.into(),
    })?;
    drop(bar);
    let (r, k) = (&report.restore, &report.recovery);
    if ctx.json {
        return ctx.print_report(&report);
    }
    ctx.print(format!(
        "restored generation {} into {}: {} messages, {} media items",
        r.generation,
        dir.display(),
        r.messages,
        r.media
    ))?;
    ctx.print(format!(
        "backup key recovered in {:.2} s from {}{}",
        k.duration.as_secs_f64(),
        k.servers_used.join(", "),
        if k.recovery_code_used { " and the recovery code" } else { "" }
    ))?;
    for failure in &k.servers_failed {
        ctx.print(format!("not used: {failure}"))?;
    }
    match &report.freshness {
        vault_core::recovery::Freshness::Verified { by } => {
            ctx.print(format!("freshness: generation {} confirmed by {}", r.generation, by.join(", ")))?
        }
        vault_core::recovery::Freshness::Unverified => ctx.print(
            "freshness: UNVERIFIED: no guardian other than the data server confirmed this is the newest backup \
             (restored because --accept-unverified-freshness was given)",
        )?,
    }
    if !report.enrolled {
        ctx.print(not_enrolled_note(k))?;
    } else {
        ctx.print(format!(
            "this device ({device_name}) now writes the backup{}",
            match &report.took_over_from {
                Some(previous) => format!("; device {previous} no longer does (it can still read and restore it)"),
                None => String::new(),
            }
        ))?;
    }
    Ok(())
}

/// `vault backup password`.
pub fn password(ctx: &mut Context<'_>) -> Result<(), Failure> {
    let vault = ctx.unlock()?;
    let old = ctx.input.backup_password()?;
    let new = ctx.input.new_backup_password()?;
    vault.recovery()?.change_password(&crate::network::network(), &old, &new)?;
    ctx.print(
        "backup password changed on every guardian; the recovery code stays valid (a guardian that kept its \
         old record still opens it with the old password: run `vault backup new-recovery-code` if the old \
         password may have leaked)",
    )
}

/// `vault backup refresh-shares` and `vault backup new-recovery-code`.
pub fn refresh(ctx: &mut Context<'_>) -> Result<(), Failure> {
    let vault = ctx.unlock()?;
    let password = ctx.input.backup_password()?;
    let code = vault.recovery()?.refresh_shares(&crate::network::network(), &password)?;
    if ctx.json {
        return ctx.print_json(&json!({ "recovery_code": code.as_ref().map(RecoveryCode::expose_secret) }));
    }
    ctx.print(
        "the backup key was rotated: backups from now on open only with the new key, so the old recovery \
         code, the old shares (even a guardian's kept copy) and copies of this vault made before open none of \
         them; older backups stay readable to those until pruned",
    )?;
    if let Some(code) = code {
        ctx.print("new recovery code (shown only this once):")?;
        ctx.print(format!("  {}", code.expose_secret()))?;
    }
    Ok(())
}

/// `vault backup devices [--revoke ID_OR_NAME [--revoke-this-device]]`.
pub fn devices(ctx: &mut Context<'_>, revoke: Option<String>, revoke_this_device: bool) -> Result<(), Failure> {
    let vault = ctx.unlock()?;
    let network = crate::network::network();
    let mut recovery = vault.recovery()?;
    if let Some(device) = revoke {
        let password = ctx.input.backup_password()?;
        let revoked =
            recovery.revoke_device(&network, &password, &device, revoke_this_device).map_err(|e| match e {
                vault_core::Error::InvalidInput(m) if m.starts_with("that is this device") => {
                    Failure::usage(format!("{m}: add --revoke-this-device"))
                }
                // Only the rotation after the revocation checks the writer: the tokens are gone.
                taken @ vault_core::Error::TakenOver { .. } => {
                    let failure = Failure::from(taken);
                    Failure {
                        message: format!(
                            "the device was revoked at every guardian, but the backup key was NOT rotated: {}; \
                             then run `vault backup refresh-shares`",
                            failure.message
                        ),
                        ..failure
                    }
                }
                other => other.into(),
            })?;
        if revoked.revoked == 0 {
            return Err(Failure::usage(format!("no device with id or name {device:?} at any guardian")));
        }
        let code = revoked.recovery_code.as_ref().map(RecoveryCode::expose_secret);
        if ctx.json {
            return ctx.print_json(
                &json!({ "revoked": revoked.revoked, "key_rotated": revoked.key_rotated, "recovery_code": code }),
            );
        }
        ctx.print(format!("revoked {} device tokens", revoked.revoked))?;
        if revoked.key_rotated {
            ctx.print("the backup key was rotated: the revoked device's copy opens nothing backed up from now on")?;
        }
        if let Some(code) = code {
            ctx.print(
                "new recovery code (shown only this once; the old one, with any guardian's old record, recovers \
                 only the old key, which opens nothing backed up from now on):",
            )?;
            ctx.print(format!("  {code}"))?;
        }
        return Ok(());
    }
    let lists = recovery.devices(&network)?;
    if ctx.json {
        return ctx.print_json(&json!({ "guardians": lists }));
    }
    for list in lists {
        ctx.print(list.server.clone())?;
        for d in &list.devices {
            let mark = if d.id == list.this_device { " (this device)" } else { "" };
            ctx.print(format!(
                "  {}  {}  enrolled {}{mark}",
                d.id,
                d.name,
                crate::render::local_time_secs(d.enrolled_at_secs)
            ))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use vault_core::recovery::{RecoveryPolicy, RecoveryReport};

    #[test]
    fn an_unenrolled_restore_names_the_policy_not_a_server_nobody_gave() {
        let report = RecoveryReport {
            servers_used: vec!["https://a.example".to_owned()],
            recovery_code_used: true,
            policy: RecoveryPolicy::new(3, None, true, false).ok(),
            ..RecoveryReport::default()
        };
        assert_eq!(
            super::not_enrolled_note(&report),
            "the recovery policy names 3 guardian servers; 1 were reached: run `vault backup setup` on this vault to back up again"
        );
    }
}
