//! Canary scans: every byte of every file under a directory searched for given byte strings
//! (message markers, media samples, account names, passwords) that must never be stored.

use std::path::Path;

/// What a scan read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Files read.
    pub files: usize,
    /// Bytes read.
    pub bytes: u64,
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else { return true };
    let mut from = 0;
    while let Some(at) = haystack[from..].iter().position(|&b| b == first) {
        let start = from + at;
        if haystack[start + 1..].starts_with(rest) {
            return true;
        }
        from = start + 1;
    }
    false
}

/// Reads every file under `dir` (recursively) and fails the test, naming the file and the
/// needle, if any holds one of `needles` (`(what it is, bytes)`). Returns what it read, so the
/// caller can check that the scan covered what it expected.
pub fn assert_absent(dir: &Path, needles: &[(&str, &[u8])]) -> Scanned {
    let mut scanned = Scanned::default();
    for file in crate::fs::find_files(dir, "") {
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        scanned.files += 1;
        scanned.bytes += bytes.len() as u64;
        for (what, needle) in needles {
            assert!(
                !contains(&bytes, needle),
                "{} holds the {what} ({:?})",
                file.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
    scanned
}

#[cfg(test)]
mod tests {
    use super::contains;

    #[test]
    fn finds_a_needle_anywhere_and_only_where_it_is() {
        assert!(contains(b"abcabd", b"abd"));
        assert!(contains(b"abd", b"abd"));
        assert!(contains(b"xx", b""));
        assert!(!contains(b"abcab", b"abd"));
        assert!(!contains(b"ab", b"abd"));
        assert!(!contains(b"", b"a"));
    }
}
