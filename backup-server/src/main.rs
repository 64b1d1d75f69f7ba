//! `backup-server`: the zero-knowledge blob server (under construction; see
//! `docs/ARCHITECTURE.md`). It will store only opaque, client-encrypted bytes and must never
//! depend on SQLCipher or see plaintext.

fn main() -> std::process::ExitCode {
    eprintln!("backup-server: not built yet in this version");
    std::process::ExitCode::from(1)
}
