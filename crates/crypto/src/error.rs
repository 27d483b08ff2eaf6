//! The error type shared by every module of the crate.

/// An error from a cryptographic operation.
///
/// Messages never contain secret material, only what kind of input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Key material was malformed, had the wrong length or was refused by the library.
    #[error("invalid key material: {0}")]
    InvalidKey(&'static str),
    /// A sealed value was not in the `v1.<base64url>` format or was too short.
    #[error("malformed sealed value")]
    MalformedSealed,
    /// A sealed value failed authentication: wrong key, wrong associated data or tampering.
    #[error("sealed value could not be opened")]
    Decrypt,
    /// Encryption failed inside the cryptographic library.
    #[error("encryption failed")]
    Encrypt,
    /// Text was not valid RFC 4648 base32 or decoded to an unacceptable length.
    #[error("invalid base32 text")]
    InvalidBase32,
    /// Password hashing parameters were outside what Argon2 accepts.
    #[error("invalid password hashing parameters")]
    InvalidParams,
    /// Argon2 failed while hashing a password.
    #[error("password hashing failed")]
    PasswordHash,
    /// The text could not be encoded as a QR code, usually because it is too long.
    #[error("text cannot be encoded as a QR code")]
    Qr,
    /// The CAPTCHA image could not be rendered.
    #[error("CAPTCHA rendering failed")]
    Captcha,
    /// A signing algorithm name was not one of the supported ones.
    #[error("unsupported key algorithm")]
    UnsupportedAlgorithm,
    /// Key generation failed inside the cryptographic library.
    #[error("key generation failed")]
    KeyGeneration,
    /// Signing failed inside the cryptographic library.
    #[error("signing failed")]
    Signing,
}
