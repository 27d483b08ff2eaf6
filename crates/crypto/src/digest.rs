//! Digests for storing secrets by lookup value: plain SHA-256 for high-entropy tokens and a
//! peppered HMAC for short secrets, plus constant-time comparison.

use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
/// This is the lowercase hex SHA-256 of the token's UTF-8 bytes; for a token that carries an
/// issue stamp ([`crate::random::ordered_token`], or a JWT whose `jti` is one), the stamp, `~`,
/// then that hex SHA-256. Issued one after another, such tokens get keys that follow each other,
/// which keeps the store's inserts together in its index. The key is a function of the token's
/// text alone: the same text always gives the same key, whether the token is genuine or not, and
/// every token issued without a stamp keeps the key it was stored under. Tokens with less entropy
/// must use [`Pepper::keyed_digest`] instead, because a plain hash of them can be brute-forced.
#[must_use]
pub fn token_digest(token: &str) -> String {
    let hash = sha256_hex(token.as_bytes());
    match issue_stamp(token) {
        Some(stamp) => format!("{stamp}~{hash}"),
        None => hash,
    }
}

/// Hex digits in an issue stamp.
const STAMP_LEN: usize = 12;

/// The issue stamp of an ordered token: the [`STAMP_LEN`] lowercase hex digits right before its
/// first `~`; for a JWT (three base64url parts, no `~`), that of the string value of the first
/// `"jti":"` in its decoded payload, read as our serializer writes it.
fn issue_stamp(token: &str) -> Option<String> {
    if let Some(stamp) = stamp_of(token) {
        return Some(stamp.to_owned());
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let payload = std::str::from_utf8(&payload).ok()?;
    let (_, rest) = payload.split_once("\"jti\":\"")?;
    let (jti, _) = rest.split_once('"')?;
    stamp_of(jti).map(str::to_owned)
}

fn stamp_of(text: &str) -> Option<&str> {
    let end = text.find('~')?;
    let stamp = text.get(end.checked_sub(STAMP_LEN)?..end)?;
    stamp.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')).then_some(stamp)
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
    fn ordered_tokens_are_keyed_by_their_stamp_then_their_hash() {
        let token = "ya29.6ab1c2d34f1e~Qm9vbW9vbW9vbW9v";
        assert_eq!(token_digest(token), format!("6ab1c2d34f1e~{}", sha256_hex(token.as_bytes())));
        let rng = crate::random::FixedRng::new(b"seed");
        let earlier = format!("1/{}", crate::random::ordered_token(&rng, 1_790_000_000, 32));
        let later = format!("1/{}", crate::random::ordered_token(&rng, 1_790_000_001, 32));
        assert!(token_digest(&earlier).starts_with("6ab13b80"), "{earlier}");
        assert!(token_digest(&earlier) < token_digest(&later));
        assert_eq!(token_digest(&earlier).len(), STAMP_LEN + 1 + 64);
    }

    #[test]
    fn tokens_without_a_stamp_keep_the_plain_hash() {
        for token in [
            "ya29.Qm9vbW9vbW9vbW9vQm9vbW9vbW9vbW9vQm9vbW9vbW8",
            "6ab1c2d34f1~short-stamp",
            "6AB1C2D34F1E~upper-case",
            "6ab1c2d34f1g~not-hex",
            "~",
            "",
            "a.b.c",
            "é~",
        ] {
            assert_eq!(token_digest(token), sha256_hex(token.as_bytes()), "{token}");
        }
    }

    #[test]
    fn a_jwt_is_keyed_by_the_stamp_of_its_jti() {
        let encode = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let header = encode(r#"{"alg":"ES256","typ":"at+jwt"}"#);
        let ordered =
            format!("{header}.{}.c2ln", encode(r#"{"sub":"x","jti":"6ab1c2d34f1e~AAAA","exp":1}"#));
        assert_eq!(
            token_digest(&ordered),
            format!("6ab1c2d34f1e~{}", sha256_hex(ordered.as_bytes()))
        );
        for payload in [
            r#"{"sub":"x","jti":"AAAAAAAAAAAAAAAAAAAAAA"}"#,
            r#"{"sub":"x","jti": "6ab1c2d34f1e~AAAA"}"#,
            r#"{"sub":"x","jti":"6ab1c2d34f1e~AAAA"#,
            r#"{"sub":"x"}"#,
        ] {
            let token = format!("{header}.{}.c2ln", encode(payload));
            assert_eq!(token_digest(&token), sha256_hex(token.as_bytes()), "{payload}");
        }
        let four = format!("{header}.{}.c2ln.x", encode(r#"{"jti":"6ab1c2d34f1e~A"}"#));
        assert_eq!(token_digest(&four), sha256_hex(four.as_bytes()));
    }

    proptest::proptest! {
        #[test]
        fn any_text_gets_a_key_and_text_without_a_tilde_its_plain_hash(text in "\\PC{0,200}") {
            let key = token_digest(&text);
            proptest::prop_assert!(key.ends_with(&sha256_hex(text.as_bytes())));
            if !text.contains('~') && text.split('.').count() != 3 {
                proptest::prop_assert_eq!(key, sha256_hex(text.as_bytes()));
            }
        }
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
