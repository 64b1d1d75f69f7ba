//! Plain data that crosses the boundary by value.

use vault_core::SlotMethod;

/// A stored message.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Message {
    /// Row id.
    pub id: i64,
    /// Conversation name.
    pub conversation: String,
    /// Sender.
    pub sender: String,
    /// Send time, ms since the epoch.
    pub sent_at: i64,
    /// Receipt time, ms since the epoch.
    pub received_at: i64,
    /// The text.
    pub body: String,
    /// Delivery status (`pending`, `sent`, `delivered`, `read`, `failed`, `received`).
    pub status: String,
    /// Disappearing time, ms since the epoch.
    pub expires_at: Option<i64>,
}

impl From<vault_core::Message> for Message {
    fn from(m: vault_core::Message) -> Self {
        Self {
            id: m.id.0,
            conversation: m.conversation,
            sender: m.sender,
            sent_at: m.sent_at,
            received_at: m.received_at,
            body: m.body,
            status: m.status.as_str().to_owned(),
            expires_at: m.expires_at,
        }
    }
}

/// A search result.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SearchHit {
    /// The message.
    pub message: Message,
    /// BM25 rank; lower is better.
    pub rank: f64,
}

/// A key slot, without key material.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Slot {
    /// Slot number.
    pub id: u32,
    /// `passphrase` or `key_wrapper`.
    pub kind: String,
    /// The wrapper's label (key-wrapper slots).
    pub label: Option<String>,
    /// Whether the slot is hardware-backed.
    pub hardware_backed: bool,
}

impl From<vault_core::SlotInfo> for Slot {
    fn from(s: vault_core::SlotInfo) -> Self {
        let (kind, label, hardware_backed) = match s.method {
            SlotMethod::Passphrase { .. } => ("passphrase", None, false),
            SlotMethod::KeyWrapper { label, hardware_backed } => ("key_wrapper", Some(label), hardware_backed),
            _ => ("unknown", None, false),
        };
        Self { id: s.id.0, kind: kind.to_owned(), label, hardware_backed }
    }
}

/// A security-log entry.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SecurityEvent {
    /// When, ms since the epoch.
    pub at: i64,
    /// What happened, e.g. `unlock_failed`.
    pub kind: String,
    /// Non-secret detail.
    pub detail: String,
}

impl From<vault_core::SecurityEvent> for SecurityEvent {
    fn from(e: vault_core::SecurityEvent) -> Self {
        Self { at: e.at, kind: e.kind.as_str().to_owned(), detail: e.detail }
    }
}

/// The privacy dashboard.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VaultStatus {
    /// SQLCipher version.
    pub cipher_version: String,
    /// Key slots.
    pub slots: Vec<Slot>,
    /// The slot that unlocked.
    pub unlocked_by: u32,
    /// Message count.
    pub messages: u64,
    /// Media count.
    pub media_items: u64,
    /// Newest security events.
    pub recent_events: Vec<SecurityEvent>,
}

/// One check of `verify`.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VerifyCheck {
    /// What was checked.
    pub name: String,
    /// Problems found; empty when it passed.
    pub problems: Vec<String>,
}

/// The vault-wide retention limit.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RetentionPolicy {
    /// Purge messages older than this many seconds.
    #[uniffi(default)]
    pub max_age_secs: Option<u64>,
    /// Keep only this many newest messages.
    #[uniffi(default)]
    pub max_messages: Option<u64>,
}
