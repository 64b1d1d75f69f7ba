//! Directory trees: copies and listings.

use std::path::{Path, PathBuf};

/// Copies the directory tree `from` to `to` (directories and regular files; links and other
/// kinds are skipped).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("cannot create {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir`, recursively, whose name starts with `prefix` (`""`: every file).
pub fn find_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(find_files(&path, prefix));
        } else if path.file_name().unwrap().to_string_lossy().starts_with(prefix) {
            out.push(path);
        }
    }
    out
}

/// The one file `name` (`escrow`, `head`, `record`) of the one account under a backup server's
/// data directory (`…/accounts/<hash>/<name>`); panics unless there is exactly one.
pub fn account_file(data: &Path, name: &str) -> PathBuf {
    let files: Vec<PathBuf> = find_files(data, name)
        .into_iter()
        .filter(|f| {
            f.file_name().is_some_and(|n| n == name)
                && f.parent().and_then(Path::parent).and_then(Path::file_name).is_some_and(|d| d == "accounts")
        })
        .collect();
    assert_eq!(files.len(), 1, "{name} under {}", data.display());
    files.into_iter().next().unwrap()
}
