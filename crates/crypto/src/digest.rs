//! Digests for storing secrets by lookup value: plain SHA-256 for high-entropy tokens and a
//! peppered HMAC for short secrets, plus constant-time comparison.

use aws_lc_rs::{digest, hmac};
use subtle::ConstantTimeEq as _;

use crate::hex;

/// Returns the SHA-256 of `data` (PKCE challenges, `at_hash`).
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// Returns the lowercase hex SHA-256 of `data`.
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data).as_ref())
}

/// Returns the digest under which a high-entropy token (128 bits or more) is stored.
///
/// This is the lowercase hex SHA-256 of the token's UTF-8 bytes. Tokens with less entropy
/// must use [`Pepper::keyed_digest`] instead, because a plain hash of them can be brute-forced.
#[must_use]
pub fn token_digest(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Compares two byte strings in time that depends only on their lengths.
#[must_use]
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A 32-byte server secret that keys digests of low-entropy secrets such as app passwords.
///
/// Without the pepper, a leaked database does not allow an offline search of those secrets.
#[derive(Clone)]
pub struct Pepper {
    key: hmac::Key,
}

impl Pepper {
    /// Wraps 32 secret bytes, usually from [`crate::Kek::derive`].
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, &bytes) }
    }

    /// Returns the lowercase hex HMAC-SHA256 of `purpose || 0x00 || value`.
    ///
    /// `purpose` separates domains (for example `"app-password"`), so that a digest computed
    /// for one kind of secret never matches another kind. It should not contain a NUL byte.
    #[must_use]
    pub fn keyed_digest(&self, purpose: &str, value: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(value);
        hex::encode(ctx.sign().as_ref())
    }
}

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pepper(")?;
        f.write_str(crate::REDACTED)?;
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answers() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(token_digest("abc"), sha256_hex(b"abc"));
    }

    #[test]
    fn keyed_digest_is_hmac_sha256_over_framed_message() {
        // The expected value was computed independently with Python's hmac module:
        // hmac.new(b"\x07" * 32, b"purpose\x00value", hashlib.sha256).hexdigest().
        let pepper = Pepper::from_bytes([7u8; 32]);
        assert_eq!(
            pepper.keyed_digest("purpose", b"value"),
            "5a79501b26ca7d2b46a8dfb6de13a63072022f75b576de93fbda440a37865cee"
        );
    }

    #[test]
    fn keyed_digest_separates_purposes_keys_and_framing() {
        let pepper = Pepper::from_bytes([1u8; 32]);
        let other = Pepper::from_bytes([2u8; 32]);
        let d = pepper.keyed_digest("app-password", b"abcdefghijklmnop");
        assert_eq!(d, pepper.keyed_digest("app-password", b"abcdefghijklmnop"));
        assert_ne!(d, pepper.keyed_digest("recovery-code", b"abcdefghijklmnop"));
        assert_ne!(d, other.keyed_digest("app-password", b"abcdefghijklmnop"));
        // The NUL separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(pepper.keyed_digest("ab", b"c"), pepper.keyed_digest("a", b"bc"));
    }

    #[test]
    fn pepper_debug_is_redacted() {
        let pepper = Pepper::from_bytes([0x41; 32]);
        assert_eq!(format!("{pepper:?}"), "Pepper([redacted])");
    }

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
