//! Time-based one-time passwords (RFC 6238) with HMAC-SHA1, 6 digits and a 30-second step,
//! the settings every authenticator app supports.

use aws_lc_rs::hmac;
use subtle::ConstantTimeEq as _;

use crate::random::Rng;
use crate::{CryptoError, base32};

/// The length of a TOTP step in seconds.
pub const STEP_SECONDS: i64 = 30;

/// The number of digits in a code.
pub const DIGITS: u32 = 6;

/// The length of generated secrets in bytes (160 bits, as RFC 4226 recommends).
pub const SECRET_LEN: usize = 20;

/// The shortest secret accepted when reading one back (128 bits, the RFC 4226 minimum).
pub const MIN_SECRET_LEN: usize = 16;

/// The longest secret accepted when reading one back.
pub const MAX_SECRET_LEN: usize = 64;

/// The largest clock skew, in steps either side, that [`TotpSecret::check`] honours.
pub const MAX_SKEW_STEPS: i64 = 10;

/// Computes an RFC 4226 HOTP value of `digits` digits (at most 10) for `counter`.
#[must_use]
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // Dynamic truncation: the low nibble of the last byte picks four bytes of the MAC.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary =
        u32::from_be_bytes([mac[offset] & 0x7f, mac[offset + 1], mac[offset + 2], mac[offset + 3]]);
    let digits = digits.min(10);
    let code = u64::from(binary) % 10u64.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// Returns the TOTP step containing unix time `now`.
#[must_use]
pub fn step_at(now: i64) -> i64 {
    now.div_euclid(STEP_SECONDS)
}

/// A TOTP shared secret.
///
/// Its `Debug` output is redacted and it cannot be serialised; store it sealed with
/// [`crate::Kek::seal`] over [`TotpSecret::as_bytes`] or [`TotpSecret::to_base32`].
/// Equality is compared in constant time.
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl PartialEq for TotpSecret {
    fn eq(&self, other: &Self) -> bool {
        crate::digest::ct_eq(&self.0, &other.0)
    }
}

impl Eq for TotpSecret {}

impl TotpSecret {
    /// Generates a fresh 20-byte secret.
    #[must_use]
    pub fn generate(rng: &dyn Rng) -> Self {
        let mut bytes = vec![0u8; SECRET_LEN];
        rng.fill(&mut bytes);
        Self(bytes)
    }

    /// Wraps raw secret bytes.
    ///
    /// # Errors
    ///
    /// Returns [`CryptoError::InvalidKey`] unless the secret has 16 to 64 bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, CryptoError> {
        if (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            Ok(Self(bytes))
        } else {
            Err(CryptoError::InvalidKey("a TOTP secret must have 16 to 64 bytes"))
        }
    }

    /// Returns the raw secret bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Returns the secret as uppercase base32 without padding, as authenticator apps expect.
    #[must_use]
    pub fn to_base32(&self) -> String {
        base32::encode(&self.0)
    }

    /// Reads a secret back from base32 (case-insensitive, spaces and padding ignored).
    ///
    /// # Errors
    ///
    /// Returns [`CryptoError::InvalidBase32`] for malformed text and
    /// [`CryptoError::InvalidKey`] if the secret is shorter than 16 or longer than 64 bytes.
    pub fn from_base32(text: &str) -> Result<Self, CryptoError> {
        Self::from_bytes(base32::decode(text)?)
    }

    /// Returns the 6-digit code for TOTP step `step`; negative steps are treated as step 0.
    #[must_use]
    pub fn code_at(&self, step: i64) -> String {
        hotp(&self.0, u64::try_from(step).unwrap_or(0), DIGITS)
    }

    /// Returns the 6-digit code for unix time `now`.
    #[must_use]
    pub fn code_at_time(&self, now: i64) -> String {
        self.code_at(step_at(now))
    }

    /// Checks `code` against the steps within `skew_steps` of the step containing `now`.
    ///
    /// Returns the matched step, which the caller must store and compare on the next login to
    /// refuse replays (see [`TotpSecret::check_after`]). Input that is not exactly six ASCII
    /// digits after trimming surrounding whitespace is refused. Every candidate step is
    /// compared in constant time and all of them are always computed. `skew_steps` is clamped
    /// to `0..=10`, and steps before the epoch never match.
    #[must_use]
    pub fn check(&self, code: &str, now: i64, skew_steps: i64) -> Option<i64> {
        self.check_after(code, now, skew_steps, None)
    }

    /// Like [`TotpSecret::check`], but only accepts steps strictly after `last_used_step`.
    #[must_use]
    pub fn check_after(
        &self,
        code: &str,
        now: i64,
        skew_steps: i64,
        last_used_step: Option<i64>,
    ) -> Option<i64> {
        let code = code.trim();
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let skew = skew_steps.clamp(0, MAX_SKEW_STEPS);
        let current = step_at(now);
        let mut matched = None;
        for delta in -skew..=skew {
            let Some(step) = current.checked_add(delta) else { continue };
            let Ok(counter) = u64::try_from(step) else { continue };
            let candidate = hotp(&self.0, counter, DIGITS);
            let equal: bool = candidate.as_bytes().ct_eq(code.as_bytes()).into();
            let fresh = last_used_step.is_none_or(|last| step > last);
            if equal && fresh && matched.is_none() {
                matched = Some(step);
            }
        }
        matched
    }

    /// Returns the `otpauth://` URI that authenticator apps read from a QR code.
    ///
    /// The label is `issuer:account` with both parts percent-encoded, and the issuer is
    /// repeated in the query, as the Google Authenticator key URI format recommends.
    #[must_use]
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            percent_encode(issuer),
            percent_encode(account),
            self.to_base32(),
            percent_encode(issuer),
        )
    }
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(")?;
        f.write_str(crate::REDACTED)?;
        f.write_str(")")
    }
}

/// Percent-encodes every byte except the RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::FixedRng;
    use proptest::prelude::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(RFC_SECRET.to_vec()).unwrap()
    }

    #[test]
    fn rfc_4226_appendix_d_hotp_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, counter as u64, 6), *code, "counter {counter}");
        }
    }

    #[test]
    fn rfc_6238_appendix_b_sha1_vectors() {
        let vectors: [(i64, &str); 6] = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        let secret = rfc_secret();
        for (time, code) in vectors {
            let step = step_at(time);
            assert_eq!(hotp(RFC_SECRET, step as u64, 8), code, "time {time}");
            // The 6-digit code is the last six digits of the 8-digit one.
            assert_eq!(secret.code_at(step), code[2..], "time {time}");
            assert_eq!(secret.code_at_time(time), code[2..]);
            assert_eq!(secret.check(&code[2..], time, 0), Some(step));
        }
    }

    #[test]
    fn check_honours_skew_and_reports_the_step() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let step = step_at(now);
        let previous = secret.code_at(step - 1);
        let next = secret.code_at(step + 1);
        let far = secret.code_at(step - 2);
        assert_eq!(secret.check(&previous, now, 1), Some(step - 1));
        assert_eq!(secret.check(&next, now, 1), Some(step + 1));
        assert_eq!(secret.check(&previous, now, 0), None);
        assert_eq!(secret.check(&far, now, 1), None);
        assert_eq!(secret.check(&far, now, 2), Some(step - 2));
        // A negative skew is treated as zero and a huge one is clamped.
        assert_eq!(secret.check(&previous, now, -5), None);
        assert_eq!(secret.check(&secret.code_at(step - 11), now, i64::MAX), None);
        assert_eq!(secret.check(&secret.code_at(step - 10), now, i64::MAX), Some(step - 10));
    }

    #[test]
    fn check_after_refuses_replays() {
        let secret = rfc_secret();
        let now = 2_000_000_000;
        let step = step_at(now);
        let code = secret.code_at(step);
        let used = secret.check_after(&code, now, 1, None).unwrap();
        assert_eq!(secret.check_after(&code, now, 1, Some(used)), None);
        assert_eq!(secret.check_after(&code, now, 1, Some(used - 1)), Some(step));
        // An older step is refused once a newer one was used.
        let previous = secret.code_at(step - 1);
        assert_eq!(secret.check_after(&previous, now, 1, Some(step)), None);
    }

    #[test]
    fn check_rejects_malformed_codes() {
        let secret = rfc_secret();
        let now = 59;
        assert_eq!(secret.check("287082", now, 0), Some(1));
        assert_eq!(secret.check(" 287082\n", now, 0), Some(1));
        for bad in ["", "28708", "2870820", "28708a", "287 082", "+87082", "٢٨٧٠٨٢", "94287082"]
        {
            assert_eq!(secret.check(bad, now, 1), None, "{bad:?}");
        }
    }

    #[test]
    fn check_handles_extreme_times() {
        let secret = rfc_secret();
        assert_eq!(secret.check("000000", i64::MIN, 10), None);
        let _ = secret.check("000000", i64::MAX, 10);
        // Steps before the epoch never match, even when their code would.
        let code = secret.code_at(0);
        assert_eq!(secret.check(&code, -30, 0), None);
        assert_eq!(secret.check(&code, -30, 1), Some(0));
    }

    #[test]
    fn generate_base32_round_trip_and_debug() {
        let rng = FixedRng::new(b"totp");
        let secret = TotpSecret::generate(&rng);
        assert_eq!(secret.as_bytes().len(), 20);
        let text = secret.to_base32();
        assert_eq!(text.len(), 32);
        assert_eq!(TotpSecret::from_base32(&text).unwrap(), secret);
        assert_eq!(TotpSecret::from_base32(&text.to_lowercase()).unwrap(), secret);
        assert_ne!(TotpSecret::generate(&rng), secret);
        assert_eq!(format!("{secret:?}"), "TotpSecret([redacted])");
        assert!(matches!(TotpSecret::from_base32("MZXW6"), Err(CryptoError::InvalidKey(_))));
        assert!(matches!(TotpSecret::from_base32("!!"), Err(CryptoError::InvalidBase32)));
        assert!(TotpSecret::from_bytes(vec![0; 65]).is_err());
    }

    #[test]
    fn otpauth_uri_is_percent_encoded() {
        let secret = rfc_secret();
        assert_eq!(
            secret.otpauth_uri("Tessera", "alice@example.org"),
            "otpauth://totp/Tessera:alice%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Tessera&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            secret.otpauth_uri("Acme & Co: Ünï", "a b/c?d#e"),
            "otpauth://totp/Acme%20%26%20Co%3A%20%C3%9Cn%C3%AF:a%20b%2Fc%3Fd%23e\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20%26%20Co%3A%20%C3%9Cn%C3%AF\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    proptest! {
        #[test]
        fn check_never_panics(code in ".*", now: i64, skew: i64) {
            let _ = rfc_secret().check(&code, now, skew);
        }

        #[test]
        fn check_never_panics_on_digit_codes(code in "[0-9]{0,8}", now: i64, skew in -3i64..12) {
            let result = rfc_secret().check(&code, now, skew);
            if let Some(step) = result {
                prop_assert_eq!(code.len(), 6);
                prop_assert!((step - step_at(now)).abs() <= skew.clamp(0, MAX_SKEW_STEPS));
            }
        }

        #[test]
        fn own_codes_are_accepted(seed: Vec<u8>, now in 0i64..4_000_000_000) {
            let secret = TotpSecret::generate(&FixedRng::new(&seed));
            let code = secret.code_at_time(now);
            prop_assert_eq!(code.len(), 6);
            prop_assert_eq!(secret.check(&code, now, 0), Some(step_at(now)));
        }
    }
}
