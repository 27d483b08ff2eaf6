//! The key-encryption key: one configured 32-byte secret that seals stored secrets with
//! AES-256-GCM and derives the other server keys (pepper, CSRF key) by label.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};

use crate::CryptoError;
use crate::random::Rng;

/// The prefix of every sealed value produced by this version of the format.
const SEALED_PREFIX: &str = "v1.";

/// The length of the AES-GCM authentication tag in bytes.
const TAG_LEN: usize = 16;

/// Standard-alphabet base64 that accepts input with or without padding.
const STANDARD_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// URL-safe base64 that accepts input with or without padding.
const URL_SAFE_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The [`Kek::derive`] label of the pepper for [`crate::digest::Pepper`].
pub const PEPPER_LABEL: &str = "tessera/pepper/v1";

/// The [`Kek::derive`] label of the key that signs CSRF tokens.
pub const CSRF_LABEL: &str = "tessera/csrf/v1";

/// A 32-byte key-encryption key.
///
/// Its `Debug` output is redacted, equality is compared in constant time and it cannot be
/// serialised; use [`Kek::to_base64`] to write it into configuration deliberately.
#[derive(Clone)]
pub struct Kek {
    bytes: [u8; 32],
}

impl Kek {
    /// Wraps 32 bytes of key material.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self { bytes }
    }

    /// Parses a key from base64 text (standard or URL-safe alphabet, padded or not) that
    /// decodes to exactly 32 bytes. Surrounding whitespace is ignored.
    ///
    /// # Errors
    ///
    /// Returns [`CryptoError::InvalidKey`] if the text is not base64 or has the wrong length.
    pub fn parse(text: &str) -> Result<Kek, CryptoError> {
        let text = text.trim();
        let url_safe = text.contains(['-', '_']);
        let decoded =
            if url_safe { URL_SAFE_ANY_PAD.decode(text) } else { STANDARD_ANY_PAD.decode(text) }
                .map_err(|_| CryptoError::InvalidKey("the key is not valid base64"))?;
        let bytes: [u8; 32] = decoded
            .try_into()
            .map_err(|_| CryptoError::InvalidKey("the key must decode to exactly 32 bytes"))?;
        Ok(Kek { bytes })
    }

    /// Generates a fresh random key.
    #[must_use]
    pub fn generate(rng: &dyn Rng) -> Kek {
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes);
        Kek { bytes }
    }

    /// Returns the key as padded standard base64, the form [`Kek::parse`] reads back.
    #[must_use]
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.bytes)
    }

    fn aead_key(&self) -> Result<LessSafeKey, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, &self.bytes)
            .map_err(|_| CryptoError::InvalidKey("AES-256-GCM refused the key"))?;
        Ok(LessSafeKey::new(unbound))
    }

    /// Encrypts `plaintext` bound to `aad` with AES-256-GCM under a random 96-bit nonce.
    ///
    /// The result is `v1.` followed by base64url without padding of `nonce || ciphertext || tag`.
    /// The same `aad` (for example a table and row identifier) must be given to [`Kek::open`].
    ///
    /// # Errors
    ///
    /// Returns [`CryptoError::Encrypt`] if the library fails, which does not happen for
    /// inputs under 64 GiB.
    pub fn seal(&self, rng: &dyn Rng, aad: &[u8], plaintext: &[u8]) -> Result<String, CryptoError> {
        let key = self.aead_key()?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce);
        let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext);
        let mut body = buf.split_off(NONCE_LEN);
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| CryptoError::Encrypt)?;
        buf.extend_from_slice(&body);
        let mut out = String::with_capacity(SEALED_PREFIX.len() + buf.len().div_ceil(3) * 4);
        out.push_str(SEALED_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&buf, &mut out);
        Ok(out)
    }

    /// Decrypts a value produced by [`Kek::seal`] with the same key and `aad`.
    ///
    /// # Errors
    ///
    /// Returns [`CryptoError::MalformedSealed`] if the text is not in the sealed format, and
    /// [`CryptoError::Decrypt`] if authentication fails (wrong key, wrong `aad`, tampering).
    pub fn open(&self, aad: &[u8], sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let body = sealed.strip_prefix(SEALED_PREFIX).ok_or(CryptoError::MalformedSealed)?;
        // The strict decoder refuses padding and non-zero trailing bits, so every distinct
        // accepted string decodes to distinct bytes and any edit is caught by the tag.
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| CryptoError::MalformedSealed)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::MalformedSealed);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::MalformedSealed)?;
        let mut in_out = ciphertext.to_vec();
        let key = self.aead_key()?;
        let plaintext = key
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| CryptoError::Decrypt)?;
        let len = plaintext.len();
        in_out.truncate(len);
        Ok(in_out)
    }

    /// Derives an independent 32-byte key for `label` as HMAC-SHA256(kek, label).
    ///
    /// Use distinct, fixed labels per purpose, such as [`PEPPER_LABEL`] and [`CSRF_LABEL`];
    /// changing a label changes the derived key.
    #[must_use]
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.bytes);
        let tag = hmac::sign(&key, label.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Returns the pepper derived under [`PEPPER_LABEL`].
    #[must_use]
    pub fn pepper(&self) -> crate::digest::Pepper {
        crate::digest::Pepper::from_bytes(self.derive(PEPPER_LABEL))
    }
}

impl PartialEq for Kek {
    fn eq(&self, other: &Self) -> bool {
        crate::digest::ct_eq(&self.bytes, &other.bytes)
    }
}

impl Eq for Kek {}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(")?;
        f.write_str(crate::REDACTED)?;
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::FixedRng;
    use proptest::prelude::*;

    fn kek() -> Kek {
        Kek::from_bytes([0x42; 32])
    }

    #[test]
    fn seal_open_round_trip() {
        let rng = FixedRng::new(b"seal");
        let k = kek();
        for plaintext in [&b""[..], b"x", b"a secret TOTP seed", &[0u8; 1000]] {
            let sealed = k.seal(&rng, b"totp:42", plaintext).unwrap();
            assert!(sealed.starts_with("v1."));
            assert!(
                sealed[3..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(k.open(b"totp:42", &sealed).unwrap(), plaintext);
        }
    }

    #[test]
    fn sealing_twice_uses_fresh_nonces() {
        let rng = FixedRng::new(b"nonce");
        let k = kek();
        let a = k.seal(&rng, b"", b"same").unwrap();
        let b = k.seal(&rng, b"", b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn open_rejects_wrong_aad_key_and_format() {
        let rng = FixedRng::new(b"reject");
        let k = kek();
        let sealed = k.seal(&rng, b"row:1", b"secret").unwrap();
        assert_eq!(k.open(b"row:2", &sealed), Err(CryptoError::Decrypt));
        assert_eq!(Kek::from_bytes([0x43; 32]).open(b"row:1", &sealed), Err(CryptoError::Decrypt));
        assert_eq!(k.open(b"row:1", &sealed[3..]), Err(CryptoError::MalformedSealed));
        assert_eq!(k.open(b"row:1", "v2.AAAA"), Err(CryptoError::MalformedSealed));
        assert_eq!(k.open(b"row:1", "v1."), Err(CryptoError::MalformedSealed));
        assert_eq!(k.open(b"row:1", "v1.AAAAAAAAAAAAAAAA"), Err(CryptoError::MalformedSealed));
        assert_eq!(k.open(b"row:1", &format!("{sealed}=")), Err(CryptoError::MalformedSealed));
        // A nonce and tag of zeros is well-formed but does not authenticate.
        let zeros = format!("v1.{}", URL_SAFE_NO_PAD.encode([0u8; 28]));
        assert_eq!(k.open(b"row:1", &zeros), Err(CryptoError::Decrypt));
    }

    #[test]
    fn open_accepts_known_ciphertext() {
        // Sealed once with key 0x42 * 32, nonce 0x00..0x0b, aad "aad" and plaintext "hello";
        // this pins the wire format so that a format change is noticed.
        let k = kek();
        let nonce: Vec<u8> = (0u8..12).collect();
        let key = k.aead_key().unwrap();
        let mut body = b"hello".to_vec();
        key.seal_in_place_append_tag(
            Nonce::try_assume_unique_for_key(&nonce).unwrap(),
            Aad::from(b"aad"),
            &mut body,
        )
        .unwrap();
        let mut raw = nonce.clone();
        raw.extend_from_slice(&body);
        let sealed = format!("v1.{}", URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(k.open(b"aad", &sealed).unwrap(), b"hello");
        assert_eq!(raw.len(), 12 + 5 + 16);
    }

    #[test]
    fn parse_accepts_all_base64_flavours() {
        let bytes: [u8; 32] = std::array::from_fn(|i| u8::try_from(i * 8 + 3).unwrap());
        let k = Kek::from_bytes(bytes);
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        for engine in engines {
            let text = engine.encode(bytes);
            assert_eq!(Kek::parse(&text).unwrap(), k, "{text}");
            assert_eq!(Kek::parse(&format!("  {text}\n")).unwrap(), k);
        }
        assert_eq!(Kek::parse(&k.to_base64()).unwrap(), k);
        // These bytes encode with both '+' and '/' in the standard alphabet.
        assert!(k.to_base64().contains(['+', '/']));
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert!(matches!(Kek::parse(""), Err(CryptoError::InvalidKey(_))));
        assert!(matches!(Kek::parse("not base64!"), Err(CryptoError::InvalidKey(_))));
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 31]);
        assert!(matches!(Kek::parse(&short), Err(CryptoError::InvalidKey(_))));
        let long = base64::engine::general_purpose::STANDARD.encode([1u8; 33]);
        assert!(matches!(Kek::parse(&long), Err(CryptoError::InvalidKey(_))));
        // Mixing '+' with '-' is neither alphabet.
        let mixed =
            base64::engine::general_purpose::STANDARD.encode([0xfb; 32]).replacen('+', "-", 1);
        assert!(Kek::parse(&mixed).is_err());
    }

    #[test]
    fn generate_and_debug() {
        let rng = FixedRng::new(b"gen");
        let a = Kek::generate(&rng);
        let b = Kek::generate(&rng);
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "Kek([redacted])");
        assert!(!format!("{a:?}").contains(&a.to_base64()));
    }

    #[test]
    fn derive_is_hmac_of_label() {
        // Computed independently with Python: hmac.new(b"\x07" * 32, b"label", sha256).
        let k = Kek::from_bytes([7u8; 32]);
        assert_eq!(
            crate::hex::encode(&k.derive("label")),
            "76326eede032adfb49e43baea817b9fe4d748795cd24d90028c91785ade73b17"
        );
        assert_ne!(k.derive(PEPPER_LABEL), k.derive(CSRF_LABEL));
        assert_eq!(
            k.pepper().keyed_digest("p", b"v"),
            crate::digest::Pepper::from_bytes(k.derive(PEPPER_LABEL)).keyed_digest("p", b"v")
        );
    }

    proptest! {
        #[test]
        fn open_never_panics(text in ".*", aad: Vec<u8>) {
            let _ = kek().open(&aad, &text);
            let _ = kek().open(&aad, &format!("v1.{text}"));
        }

        #[test]
        fn open_never_panics_on_base64url_bodies(body in "[A-Za-z0-9_-]{0,80}") {
            let _ = kek().open(b"", &format!("v1.{body}"));
        }

        #[test]
        fn any_modification_is_rejected(
            plaintext: Vec<u8>,
            index: usize,
            replacement in proptest::char::any(),
        ) {
            let rng = FixedRng::new(&plaintext);
            let k = kek();
            let sealed = k.seal(&rng, b"aad", &plaintext).unwrap();
            let chars: Vec<char> = sealed.chars().collect();
            let i = index % chars.len();
            prop_assume!(chars[i] != replacement);
            let mut modified = chars.clone();
            modified[i] = replacement;
            let modified: String = modified.into_iter().collect();
            prop_assert!(k.open(b"aad", &modified).is_err());
            // Truncating or extending is rejected too.
            prop_assert!(k.open(b"aad", &sealed[..sealed.len() - 1]).is_err());
            let extended = format!("{sealed}A");
            prop_assert!(k.open(b"aad", &extended).is_err());
        }

        #[test]
        fn modified_base64_characters_are_rejected(
            plaintext: Vec<u8>,
            index: usize,
            replacement in "[A-Za-z0-9_-]",
        ) {
            let rng = FixedRng::new(&plaintext);
            let k = kek();
            let sealed = k.seal(&rng, b"aad", &plaintext).unwrap();
            let i = 3 + index % (sealed.len() - 3);
            prop_assume!(sealed[i..=i] != replacement);
            let modified = format!("{}{}{}", &sealed[..i], replacement, &sealed[i + 1..]);
            prop_assert!(k.open(b"aad", &modified).is_err());
        }
    }
}
