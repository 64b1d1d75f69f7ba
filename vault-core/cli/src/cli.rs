//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// An encrypted on-device vault: messages, search and app secrets in SQLCipher, unlocked by a
/// passphrase or a device key.
#[derive(Debug, Parser)]
#[command(name = "vault", version, about, propagate_version = true)]
pub struct Cli {
    /// The vault directory.
    #[arg(long = "vault", env = "VAULT_DIR", global = true, value_name = "DIR")]
    pub vault: Option<PathBuf>,

    /// Read the passphrase from the first line of standard input (and, where a new passphrase
    /// is needed, the new one from the second line) instead of VAULT_PASSPHRASE and
    /// VAULT_NEW_PASSPHRASE.
    #[arg(long, global = true)]
    pub passphrase_stdin: bool,

    /// Unlock with the software device key in FILE (not hardware-backed) instead of the
    /// passphrase; with `init`, also add a device-key slot (the file is created if absent).
    #[arg(long, global = true, value_name = "FILE")]
    pub device_key: Option<PathBuf>,

    /// Unlock with the TPM 2.0 (its key-wrapper slot) instead of the passphrase; with `init`,
    /// also add a TPM slot; with `key rotate`, re-seal the TPM slots. The TPM is found through
    /// --tpm-tcti, else TPM2TOOLS_TCTI, TSS2_TCTI or TCTI, else /dev/tpmrm0 or /dev/tpm0.
    /// Needs a build with the `tpm` feature.
    #[arg(long, global = true, conflicts_with = "device_key")]
    pub tpm: bool,

    /// Read the TPM PIN from the first line of standard input (before any passphrase) instead
    /// of VAULT_TPM_PIN. New TPM slots are protected by it (the TPM's own lockout counts wrong
    /// PINs); without a PIN from either, TPM slots have none.
    #[arg(long, global = true)]
    pub tpm_pin_stdin: bool,

    /// The TPM's TCTI, such as device:/dev/tpmrm0, tabrmd: or swtpm:host=127.0.0.1,port=2321
    /// (overrides the environment).
    #[arg(long, global = true, value_name = "TCTI")]
    pub tpm_tcti: Option<String>,

    /// Seal new TPM slots to these PCRs of the SHA-256 bank (for example 0,2,7): the slot then
    /// opens only while they hold today's values (a firmware or boot change makes it unusable).
    /// Off by default.
    #[arg(long, global = true, value_name = "LIST")]
    pub tpm_pcrs: Option<String>,

    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a vault (a passphrase slot, plus a device-key slot with --device-key or a TPM slot
    /// with --tpm).
    Init(KdfArgs),
    /// Add, list and delete messages.
    #[command(subcommand)]
    Msg(MsgCommand),
    /// Full-text search over message bodies (every word must match; `word*` matches a prefix).
    Search {
        /// The words to search for.
        query: String,
        /// Most results to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// The privacy dashboard: encryption, key slots, counts, recent security events.
    Status,
    /// Manage key slots.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Check the whole vault (key slots, every database page, integrity, search index, every
    /// media segment).
    Verify,
    /// Encrypted media: photos, voice notes, videos.
    #[command(subcommand)]
    Media(MediaCommand),
    /// Disappearing messages and retention limits.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Encrypted, deduplicated backups to a backup server or a directory, and restore.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Restore on a new device: recover the backup key from the guardian servers with the backup
    /// password (VAULT_BACKUP_PASSWORD or stdin) and, if needed, the recovery code
    /// (VAULT_RECOVERY_CODE, or stdin with --recovery-code-stdin; never on the command line),
    /// then rebuild the newest snapshot into a new vault at --vault (its passphrase from
    /// VAULT_PASSPHRASE).
    Restore {
        /// A guardian server (repeat for each; at least enough to reach the threshold).
        #[arg(long = "server", value_name = "URL", required = true)]
        servers: Vec<String>,
        /// The account name used at setup.
        #[arg(long)]
        account: String,
        /// The recovery code printed at setup (needed when too few servers are reachable), from
        /// VAULT_RECOVERY_CODE. The `--recovery-code CODE` form is kept for compatibility only and
        /// hidden: a code in argv is visible to other users (ps) and kept in shell history.
        #[arg(long, env = "VAULT_RECOVERY_CODE", hide = true)]
        recovery_code: Option<String>,
        /// Read the recovery code from standard input: the line after the backup password (and,
        /// with --passphrase-stdin, after the new vault's passphrase). Or set VAULT_RECOVERY_CODE.
        /// Needed only when too few servers are reachable.
        #[arg(long)]
        recovery_code_stdin: bool,
        /// Name of this device in the servers' device lists [default: "vault cli (PLATFORM,
        /// SHORT-ID)", with a random short id].
        #[arg(long)]
        device_name: Option<String>,
        /// Recover and check the backup key only; restore nothing (for timing recovery).
        #[arg(long)]
        key_only: bool,
        /// Restore even if no guardian other than the data server confirms the backup is the
        /// newest (the data server alone could be hiding newer snapshots). Without it such a
        /// restore is refused (exit 4); with it the output says the backup is unverified.
        #[arg(long)]
        accept_unverified_freshness: bool,
    },
}

/// Where a backup goes: the guardian server holding the data (`vault backup setup`), or a
/// directory.
#[derive(Debug, clap::Args)]
pub struct BackupTarget {
    /// Use a backup directory (for example on removable storage) instead of the backup server.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `vault backup …`
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Set up backup and recovery: register the account with OPAQUE on every server (backup
    /// password from VAULT_BACKUP_PASSWORD or stdin), split the backup key into one share per
    /// server plus the recovery code, seal each server's share under the password, enrol this
    /// device, and print the recovery code once. The first server also holds the backup data.
    Setup {
        /// A guardian server: https://host[:port], plain http:// only to loopback (repeat).
        #[arg(long = "server", value_name = "URL", required = true)]
        servers: Vec<String>,
        /// The account name (the servers see only a keyed hash of it).
        #[arg(long)]
        account: String,
        /// Shares needed to recover [default: 2].
        #[arg(long)]
        threshold: Option<u8>,
        /// Make a recovery code share (the default).
        #[arg(long, overrides_with = "no_recovery_code")]
        recovery_code: bool,
        /// Make no recovery code share.
        #[arg(long)]
        no_recovery_code: bool,
        /// Accept a policy in which one provider alone can recover the key (weaker).
        #[arg(long)]
        allow_single_provider: bool,
        /// Name of this device in the servers' device lists [default: "vault cli (PLATFORM,
        /// SHORT-ID)", with a random short id].
        #[arg(long)]
        device_name: Option<String>,
    },
    /// Change the backup password on every guardian (current one from VAULT_BACKUP_PASSWORD or
    /// stdin, new one from VAULT_BACKUP_NEW_PASSWORD or the next stdin line).
    Password,
    /// Split the backup key anew: every server's share and the recovery code are replaced; the old
    /// ones stop working. Prints the new recovery code.
    RefreshShares,
    /// A new recovery code (the key is split anew, so every server's share is replaced too).
    NewRecoveryCode,
    /// The devices enrolled at each guardian; --revoke stops a lost device's tokens at once.
    Devices {
        /// Revoke a device (needs the backup password): by its id (also revoked at the other
        /// guardians where one device carries its name), or by a name exactly one device carries
        /// at each guardian; a name several devices carry is refused with the list.
        #[arg(long, value_name = "ID_OR_NAME")]
        revoke: Option<String>,
        /// Allow --revoke to revoke the device running this command (its backups then stop
        /// until `vault backup setup` enrols it again).
        #[arg(long, requires = "revoke")]
        revoke_this_device: bool,
    },
    /// Back up: a new snapshot that uploads only what changed. With recovery set up, also reads
    /// the guardians' account event logs (as `vault backup events`).
    Run(BackupTarget),
    /// The objects the data server and its mirror keep deleted for their grace period (needs the
    /// backup password); --restore puts them all back (undoing a prune or someone else's
    /// deletions).
    Deleted {
        /// Restore every deleted object still kept.
        #[arg(long)]
        restore: bool,
    },
    /// Read the backup account's event log at every guardian now (password logins started and
    /// succeeded, delays after failed logins, escrow reads, device changes), add what is new to
    /// the security-event log and print it.
    Events,
    /// The snapshots the backup keeps.
    List(BackupTarget),
    /// Authenticate everything reachable from the newest snapshot.
    Verify {
        #[command(flatten)]
        target: BackupTarget,
        /// Also read and authenticate every pack.
        #[arg(long, conflicts_with = "read_data_subset")]
        read_data: bool,
        /// Also read and authenticate this share of the packs, in percent.
        #[arg(long, value_name = "PERCENT")]
        read_data_subset: Option<f64>,
    },
    /// Keep the newest N snapshots; delete what only older ones needed. With guardian servers it
    /// needs the backup password (VAULT_BACKUP_PASSWORD or stdin): device tokens cannot delete,
    /// and the servers keep what is deleted for their grace period (`vault backup deleted`).
    Prune {
        #[command(flatten)]
        target: BackupTarget,
        /// Snapshots to keep.
        #[arg(long)]
        keep: usize,
    },
    /// Developer option: write the vault's Backup Root Key to FILE (anyone with it can read every
    /// backup of this vault; on a new device, `vault restore` recovers it from the servers instead).
    ExportKey {
        /// Required: confirms you know what the file is.
        #[arg(long, required = true)]
        dangerous: bool,
        /// Where to write the key (created 0600, never over an existing file).
        file: PathBuf,
    },
    /// Restore the newest snapshot into a new vault at --vault (its passphrase from
    /// VAULT_PASSPHRASE or stdin), with the Backup Root Key from a developer key file.
    Restore {
        /// The key file written by `backup export-key --dangerous`.
        #[arg(long, value_name = "FILE")]
        backup_key_file: PathBuf,
        /// Restore from a backup directory.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["server", "account"])]
        from_dir: Option<PathBuf>,
        /// Restore from this backup server (password from VAULT_BACKUP_PASSWORD or stdin).
        #[arg(long, requires = "account")]
        server: Option<String>,
        /// The account on that server.
        #[arg(long, requires = "server")]
        account: Option<String>,
    },
}

/// `vault media …`
#[derive(Debug, Subcommand)]
pub enum MediaCommand {
    /// Encrypt FILE into the vault (streaming); prints the media id.
    Add {
        /// The file to import.
        file: PathBuf,
        /// The conversation it belongs to.
        #[arg(long)]
        conversation: Option<String>,
        /// A message to attach it to.
        #[arg(long)]
        message: Option<i64>,
    },
    /// Decrypt a media item (or a byte range of it) into OUT, which must not exist.
    Get {
        /// The media id.
        id: String,
        /// The output file.
        out: PathBuf,
        /// First byte to export.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Bytes to export (default: to the end).
        #[arg(long)]
        length: Option<u64>,
    },
    /// Delete a media item (its key is destroyed with its row).
    Rm {
        /// The media id.
        id: String,
    },
    /// List media items.
    List,
}

/// `vault retention …`
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Show the retention limits.
    Show,
    /// Set the vault-wide limits (0 clears a limit); applied now and at every unlock.
    Set {
        /// Purge messages older than this many days.
        #[arg(long)]
        max_age_days: Option<u64>,
        /// Keep only this many newest messages.
        #[arg(long)]
        max_messages: Option<u64>,
    },
    /// Make new messages in a conversation disappear after SECONDS (0 turns it off).
    Expiry {
        /// Conversation name.
        conversation: String,
        /// Lifetime of new messages in seconds.
        seconds: u64,
    },
    /// Purge everything that is due now.
    Purge,
}

/// `vault msg …`
#[derive(Debug, Subcommand)]
pub enum MsgCommand {
    /// Add a message (or, with --stdin, one message per input line).
    Add {
        /// Conversation name (created on first use).
        #[arg(long)]
        conversation: String,
        /// Sender name.
        #[arg(long)]
        sender: String,
        /// Message text.
        #[arg(long, required_unless_present = "stdin", conflicts_with = "stdin")]
        body: Option<String>,
        /// Read message bodies from standard input, one per line, stored in batches of one
        /// transaction each.
        #[arg(long)]
        stdin: bool,
        /// Make the message disappear after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        expires_in: Option<u64>,
    },
    /// List the newest messages of a conversation, oldest first.
    List {
        /// Conversation name.
        #[arg(long)]
        conversation: String,
        /// Most messages to show (at most 10,000; page further back with --before).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only messages before this one (by send time, then id): pass the first id of a page
        /// to get the page before it.
        #[arg(long, value_name = "ID")]
        before: Option<i64>,
    },
    /// Delete messages with their search entries and the media attached only to them.
    ///
    /// The freed database pages are overwritten, the search index is merged and the write-ahead
    /// log checkpointed, as for expired messages. All or nothing: an id that names no message
    /// deletes none of them (exit 1).
    Rm {
        /// The ids of the messages, as `msg list` and `search` show them (#ID).
        #[arg(required = true, value_name = "ID")]
        ids: Vec<i64>,
    },
}

/// `vault key …`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the key slots (no unlock needed: the slot file holds no secret in the clear).
    List,
    /// Add a passphrase slot (new passphrase from VAULT_NEW_PASSPHRASE or stdin line 2).
    AddPassphrase(KdfArgs),
    /// Add a software device-key slot; FILE is created (mode 0600) if absent.
    AddDeviceKey {
        /// The key file.
        file: PathBuf,
    },
    /// Add a TPM slot: the slot's key is sealed by the TPM (PIN from --tpm-pin-stdin or
    /// VAULT_TPM_PIN, PCR policy with --tpm-pcrs). Unlocks with the passphrase (or
    /// --device-key) first.
    AddTpm,
    /// Change the passphrase of the slot that unlocks (or of --slot).
    ChangePassphrase {
        /// The slot to change (default: the one the current passphrase opens).
        #[arg(long)]
        slot: Option<u32>,
        /// Argon2id cost of the new passphrase.
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// Remove a key slot (the last one cannot be removed).
    RemoveSlot {
        /// Slot number, as shown by `vault key list`.
        id: u32,
    },
    /// Rotate a key. Without --root: rotate the device key given with --device-key, or with
    /// --tpm re-seal the TPM slots under new TPM objects (re-wraps their slots; data
    /// untouched). With --root: rotate the vault root key (re-keys the database and re-seals
    /// every slot; give the passphrase and, if the vault has a device-key or TPM slot,
    /// --device-key or --tpm, so every slot can be re-sealed; with --passphrase-stdin, further
    /// lines are the passphrases of other passphrase slots).
    Rotate {
        /// Rotate the vault root key.
        #[arg(long)]
        root: bool,
    },
}

/// Argon2id cost of a new passphrase slot.
#[derive(Debug, Clone, Copy, Args)]
pub struct KdfArgs {
    /// Argon2id memory in MiB (8..=2048; memory × iterations at most 4 GiB).
    #[arg(long, default_value_t = 64)]
    pub kdf_memory_mib: u32,
    /// Argon2id passes (1..=32).
    #[arg(long, default_value_t = 3)]
    pub kdf_iterations: u32,
    /// Argon2id lanes (1..=16).
    #[arg(long, default_value_t = 4)]
    pub kdf_parallelism: u32,
}

impl KdfArgs {
    /// The library parameters; bounds are checked by the library.
    pub fn params(&self) -> vault_core::KdfParams {
        vault_core::KdfParams {
            memory_kib: self.kdf_memory_mib.saturating_mul(1024),
            iterations: self.kdf_iterations,
            parallelism: self.kdf_parallelism,
        }
    }
}

/// The default device name: `vault cli (PLATFORM, SHORT-ID)`, with 4 random hex digits, so
/// devices set up with the default can be told apart (and revoked) by name.
pub fn default_device_name() -> String {
    let id: [u8; 2] = rand_bytes();
    format!("vault cli ({}, {:02x}{:02x})", std::env::consts::OS, id[0], id[1])
}

fn rand_bytes() -> [u8; 2] {
    let mut out = [0u8; 2];
    // A name, not a secret: the time is a fine fallback if the system's randomness fails.
    if getrandom::fill(&mut out).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        out = [(nanos >> 8) as u8, nanos as u8];
    }
    out
}
