//! What account and object identifiers may look like.
//!
//! Both are checked the same way by clients and the server, so a client learns of a bad name
//! before sending it and the server never builds a storage path from an unchecked string.

/// Longest account identifier, in bytes.
pub const MAX_ACCOUNT_LEN: usize = 256;

/// Longest object identifier, in bytes.
pub const MAX_OBJECT_ID_LEN: usize = 128;

/// Whether `account` is an acceptable account identifier: 1 to 256 bytes of UTF-8 without control
/// characters. The server never stores it; it stores a keyed hash of it.
pub fn is_valid_account(account: &str) -> bool {
    !account.is_empty() && account.len() <= MAX_ACCOUNT_LEN && !account.chars().any(char::is_control)
}

/// Whether `id` is an acceptable object identifier: 1 to 128 characters from `[A-Za-z0-9_.-]`, not
/// starting with a dot. Slashes, percent signs and every other character are refused, so an
/// identifier can never name a path outside the account's objects.
pub fn is_valid_object_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_OBJECT_ID_LEN
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Whether `id` is an acceptable device identifier: 32 lowercase hexadecimal characters.
pub fn is_valid_device_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids() {
        for good in ["a", "pack-0123abcd", "manifest.000001", "A_b-c.d", &"x".repeat(MAX_OBJECT_ID_LEN)] {
            assert!(is_valid_object_id(good), "{good}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "../x", "a%2Fb", "a b", "a\\b", "é", "a\0", &"x".repeat(129)] {
            assert!(!is_valid_object_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn accounts() {
        assert!(is_valid_account("alice@example.org"));
        assert!(is_valid_account("ünïcödé"));
        assert!(!is_valid_account(""));
        assert!(!is_valid_account("a\nb"));
        assert!(!is_valid_account(&"a".repeat(MAX_ACCOUNT_LEN + 1)));
    }

    #[test]
    fn device_ids() {
        assert!(is_valid_device_id("0123456789abcdef0123456789abcdef"));
        assert!(!is_valid_device_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!is_valid_device_id("00"));
    }
}
