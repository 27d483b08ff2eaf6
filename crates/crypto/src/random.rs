//! Sources of randomness and helpers that turn random bytes into tokens and codes.
//!
//! Production code uses [`SystemRng`], which draws from aws-lc-rs. Tests use [`FixedRng`],
//! a deterministic stream derived from a seed, so that generated values are reproducible.

use std::sync::Mutex;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A source of random bytes.
///
/// Implementations must be usable from many threads at once, so `fill` takes `&self`.
pub trait Rng: Send + Sync {
    /// Fills `buf` entirely with random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// The operating system's cryptographically secure generator, through aws-lc-rs.
#[derive(Debug, Clone, Default)]
pub struct SystemRng {
    inner: SystemRandom,
}

impl SystemRng {
    /// Returns a handle on the system generator.
    #[must_use]
    pub fn new() -> Self {
        Self { inner: SystemRandom::new() }
    }
}

impl Rng for SystemRng {
    /// Fills `buf` from the system generator.
    ///
    /// # Panics
    ///
    /// Panics if the system generator fails, which aws-lc-rs only reports when the operating
    /// system cannot supply entropy at all; continuing without randomness would be unsafe.
    fn fill(&self, buf: &mut [u8]) {
        if self.inner.fill(buf).is_err() {
            panic!("the system random number generator failed");
        }
    }
}

/// A deterministic generator for tests: block `i` of the stream is `SHA-256(seed || i)`.
///
/// Two instances built from the same seed produce the same bytes. Never use it in production.
pub struct FixedRng {
    seed: Vec<u8>,
    position: Mutex<u64>,
}

impl FixedRng {
    /// Creates a stream from `seed`.
    #[must_use]
    pub fn new(seed: &[u8]) -> Self {
        Self { seed: seed.to_vec(), position: Mutex::new(0) }
    }

    fn block(&self, index: u64) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&self.seed);
        ctx.update(&index.to_be_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}

impl std::fmt::Debug for FixedRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedRng").finish_non_exhaustive()
    }
}

impl Rng for FixedRng {
    fn fill(&self, buf: &mut [u8]) {
        let mut position = self.position.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut written = 0;
        while written < buf.len() {
            let block = self.block(*position / 32);
            // The remainder of a division by 32 always fits in usize.
            let offset = usize::try_from(*position % 32).unwrap_or(0);
            let take = (32 - offset).min(buf.len() - written);
            buf[written..written + take].copy_from_slice(&block[offset..offset + take]);
            written += take;
            *position += take as u64;
        }
    }
}

/// Returns `n_bytes` random bytes encoded as base64url without padding.
///
/// The result only contains `[A-Za-z0-9_-]` and carries `8 * n_bytes` bits of entropy.
#[must_use]
pub fn token(rng: &dyn Rng, n_bytes: usize) -> String {
    let mut bytes = vec![0u8; n_bytes];
    rng.fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(&bytes)
}

/// Returns an *ordered* token: a 12-digit lowercase hex issue stamp, `~`, then `n_bytes` random
/// bytes as base64url (`6ab1c2d34f1e~Qm9…`).
///
/// The stamp is the issue second (`now`, the injected clock, as 32 bits) and an order within it
/// (16 bits, from the process's monotonic clock). [`crate::digest::token_digest`] puts the stamp in
/// front of the token's digest, so that the rows of tokens issued one after another sit next to
/// each other in the store's index instead of at random places in it: an insert then changes the
/// index page the previous insert changed, not a page of its own. The stamp carries no entropy
/// and tells nothing the token's expiry does not; the random part carries `8 * n_bytes` bits.
#[must_use]
pub fn ordered_token(rng: &dyn Rng, now: i64, n_bytes: usize) -> String {
    let second = u32::try_from(now.clamp(0, i64::from(u32::MAX))).unwrap_or(u32::MAX);
    // The position within the second comes from the process's monotonic clock (16 µs steps, so
    // 16 bits turn over about once a second): it orders tokens, it does not date them.
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let elapsed = ORIGIN.get_or_init(std::time::Instant::now).elapsed().as_nanos();
    let within = (elapsed >> 14) & 0xffff;
    format!("{second:08x}{within:04x}~{}", token(rng, n_bytes))
}

/// Returns `n` characters drawn uniformly and independently from `alphabet`.
///
/// Uses rejection sampling on single bytes, so there is no modulo bias. The alphabet must
/// hold between 1 and 256 ASCII characters; an empty alphabet yields an empty string.
#[must_use]
pub fn from_alphabet(rng: &dyn Rng, alphabet: &[u8], n: usize) -> String {
    if alphabet.is_empty() || alphabet.len() > 256 || !alphabet.is_ascii() {
        return String::new();
    }
    let size = alphabet.len();
    // The largest multiple of the alphabet size not above 256; bytes at or above it are
    // rejected so that every character is equally likely.
    let limit = 256 - 256 % size;
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        rng.fill(&mut buf);
        for &b in &buf {
            if out.len() == n {
                break;
            }
            let b = usize::from(b);
            if b < limit {
                out.push(char::from(alphabet[b % size]));
            }
        }
    }
    out
}

/// Returns a uniformly random integer in `0..bound`, or 0 when `bound` is 0.
#[must_use]
pub fn below(rng: &dyn Rng, bound: u32) -> u32 {
    if bound <= 1 {
        return 0;
    }
    let limit = u32::MAX - (u32::MAX % bound + 1) % bound;
    loop {
        let mut buf = [0u8; 4];
        rng.fill(&mut buf);
        let v = u32::from_be_bytes(buf);
        // Values above `limit` would make low results more likely, so they are redrawn.
        if v <= limit {
            return v % bound;
        }
    }
}

/// Returns `n` random lowercase letters `a-z`, without bias (used for app passwords).
#[must_use]
pub fn lower_letters(rng: &dyn Rng, n: usize) -> String {
    from_alphabet(rng, b"abcdefghijklmnopqrstuvwxyz", n)
}

/// Returns `n` random decimal digits `0-9`, without bias.
#[must_use]
pub fn digits(rng: &dyn Rng, n: usize) -> String {
    from_alphabet(rng, b"0123456789", n)
}

#[cfg(test)]
mod tests {
    use super::Rng;
    use super::*;
    use proptest::prelude::*;

    /// A generator that always returns the same byte, to exercise rejection sampling.
    struct ConstRng(Mutex<Vec<u8>>);

    impl Rng for ConstRng {
        fn fill(&self, buf: &mut [u8]) {
            let mut script = self.0.lock().unwrap();
            for b in buf.iter_mut() {
                *b = if script.is_empty() { 0 } else { script.remove(0) };
            }
        }
    }

    #[test]
    fn fixed_rng_is_reproducible_and_split_independent() {
        let a = FixedRng::new(b"seed");
        let b = FixedRng::new(b"seed");
        let mut whole = [0u8; 100];
        a.fill(&mut whole);
        let mut parts = [0u8; 100];
        b.fill(&mut parts[..7]);
        b.fill(&mut parts[7..40]);
        b.fill(&mut parts[40..]);
        assert_eq!(whole, parts);
        let first_block = digest::digest(&digest::SHA256, b"seed\0\0\0\0\0\0\0\0");
        assert_eq!(&whole[..32], first_block.as_ref());

        let c = FixedRng::new(b"other seed");
        let mut other = [0u8; 100];
        c.fill(&mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn system_rng_produces_distinct_values() {
        let rng = SystemRng::new();
        let a = token(&rng, 32);
        let b = token(&rng, 32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn token_lengths() {
        let rng = FixedRng::new(b"t");
        assert_eq!(token(&rng, 0), "");
        assert_eq!(token(&rng, 16).len(), 22);
        assert_eq!(token(&rng, 32).len(), 43);
    }

    #[test]
    fn rejection_sampling_skips_biased_bytes() {
        // 234 is the first rejected byte for a 26-letter alphabet; 235 too; 27 maps to 'b'.
        let rng = ConstRng(Mutex::new(vec![234, 235, 255, 27, 0]));
        let s = lower_letters(&rng, 2);
        assert_eq!(s, "ba");
        // For digits, 250..=255 are rejected.
        let rng = ConstRng(Mutex::new(vec![250, 255, 249, 13]));
        assert_eq!(digits(&rng, 2), "93");
    }

    #[test]
    fn below_is_in_range_and_handles_edges() {
        let rng = FixedRng::new(b"below");
        assert_eq!(below(&rng, 0), 0);
        assert_eq!(below(&rng, 1), 0);
        for _ in 0..1000 {
            assert!(below(&rng, 7) < 7);
        }
        let mut seen = [false; 2];
        for _ in 0..100 {
            seen[below(&rng, 2) as usize] = true;
        }
        assert_eq!(seen, [true, true]);
    }

    #[test]
    fn letters_cover_the_alphabet() {
        let rng = FixedRng::new(b"cover");
        let s = lower_letters(&rng, 2000);
        for c in 'a'..='z' {
            assert!(s.contains(c), "missing {c}");
        }
        let d = digits(&rng, 500);
        for c in '0'..='9' {
            assert!(d.contains(c), "missing {c}");
        }
    }

    #[test]
    fn empty_or_oversized_alphabet_yields_nothing() {
        let rng = FixedRng::new(b"x");
        assert_eq!(from_alphabet(&rng, b"", 5), "");
        assert_eq!(from_alphabet(&rng, &[b'a'; 257], 5), "");
        assert_eq!(from_alphabet(&rng, b"q", 3), "qqq");
    }

    proptest! {
        #[test]
        fn token_is_base64url_with_requested_entropy(seed: Vec<u8>, n in 0usize..200) {
            let rng = FixedRng::new(&seed);
            let t = token(&rng, n);
            prop_assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            prop_assert_eq!(t.len(), (n * 8).div_ceil(6));
            prop_assert_eq!(URL_SAFE_NO_PAD.decode(&t).unwrap().len(), n);
        }

        #[test]
        fn lower_letters_are_a_to_z_with_exact_length(seed: Vec<u8>, n in 0usize..300) {
            let rng = FixedRng::new(&seed);
            let s = lower_letters(&rng, n);
            prop_assert_eq!(s.len(), n);
            prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase()));
        }

        #[test]
        fn digits_are_decimal_with_exact_length(seed: Vec<u8>, n in 0usize..300) {
            let rng = FixedRng::new(&seed);
            let s = digits(&rng, n);
            prop_assert_eq!(s.len(), n);
            prop_assert!(s.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
