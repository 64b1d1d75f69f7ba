//! `mobile-bindings`: the thin uniffi adapter that will expose `vault-core` to Kotlin, Swift and
//! Python. It holds no logic of its own; see `docs/ARCHITECTURE.md`.

pub use vault_core;
