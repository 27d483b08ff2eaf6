//! Cryptographic building blocks for tessera: randomness, digests, sealing, passwords,
//! one-time codes, QR codes, CAPTCHAs, signing keys and self-signed certificates for them.
//!
//! The crate never reads the clock: callers pass unix seconds. Randomness comes from a
//! [`random::Rng`] passed in by the caller, so tests can substitute a deterministic source.
//! Types holding secrets print `[redacted]` in their `Debug` output and are not serialisable.

pub mod authsub;
pub mod base32;
pub mod captcha;
pub mod civil;
pub mod digest;
pub mod error;
mod hex;
pub mod kek;
pub mod keys;
pub mod oauth1;
pub mod openid;
pub mod passwd_key;
pub mod password;
pub mod qr;
pub mod random;
pub mod totp;
pub mod x509;

pub use error::CryptoError;
pub use kek::Kek;
pub use random::{FixedRng, Rng, SystemRng};

/// The text that stands in for secret material in `Debug` output.
pub(crate) const REDACTED: &str = "[redacted]";
