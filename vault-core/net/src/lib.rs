//! `vault-core-net`: the network side of the vault client. `vault-core` has no network code: its
//! recovery and backup flows talk to a [`vault_core::recovery::GuardianNetwork`] and a
//! [`vault_core::backup::Transport`]. This crate implements both over `backup-api`'s blocking
//! HTTPS client: [`HttpNetwork`] reaches guardian servers by URL (OPAQUE logins, escrow and head
//! records, devices), and [`ServerTransport`] is one account's backup storage on a server.
//!
//! The CLI and the mobile bindings depend on this crate; `vault-core` never does.

mod guardian;
mod transport;

pub use backup_api::KsfParams;
pub use backup_api::client::{ClientOptions, LoginTicket};
pub use guardian::{HttpGuardian, HttpNetwork};
pub use transport::ServerTransport;
