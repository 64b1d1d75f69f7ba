//! How the CLI reaches guardian servers.

use vault_core_net::{ClientOptions, HttpNetwork, LoginTicket};

/// The environment variable holding a login ticket from the app's account service.
pub(crate) const LOGIN_TICKET_VAR: &str = "VAULT_LOGIN_TICKET";

/// HTTPS, sending the login ticket in [`LOGIN_TICKET_VAR`] (if set) with every login start, for
/// guardians that require one.
pub(crate) fn network() -> HttpNetwork {
    let ticket = std::env::var(LOGIN_TICKET_VAR).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    HttpNetwork::new(ClientOptions { login_ticket: ticket.map(LoginTicket::new), ..ClientOptions::default() })
}
