//! The device-login password-encryption key: RSA-1024 with e = 65537, RSAES-OAEP with SHA-1 and
//! MGF1-SHA-1 (empty label).
//!
//! Android clients hard-code that shape: they encrypt `email ‖ 0x00 ‖ password` to a published
//! public key and send `0x00 ‖ fingerprint(4) ‖ ciphertext(128)` as `EncryptedPasswd`. aws-lc-rs's
//! safe API refuses RSA keys under 2048 bits, and the `rsa` crate's decryption is not constant
//! time, so this module calls AWS-LC's own RSA (constant-time, blinded private operations) through
//! `aws-lc-sys`, the same library aws-lc-rs wraps.
//!
//! This is the crate's only `unsafe` code. Each FFI call is wrapped so that:
//! - every pointer AWS-LC returns is checked for null before use and freed exactly once by an
//!   owning guard (`Rsa`, `Bn`, `Buf`), including on every early return;
//! - every buffer AWS-LC writes into is allocated here with the length AWS-LC is told;
//! - no `RSA` object outlives the call that created it (keys travel as PKCS#1 DER bytes), so no
//!   object is shared between threads.
//!
//! Key generation draws from AWS-LC's own random generator, as every other key in this crate does.
#![allow(unsafe_code)]

use std::ptr::NonNull;

use aws_lc_rs::digest;
use aws_lc_sys as sys;

use crate::{CryptoError, REDACTED};

/// Modulus size in bits.
pub const BITS: u32 = 1024;
/// Ciphertext (and modulus) length in bytes.
pub const CIPHERTEXT_LEN: usize = 128;
/// Length of the published public-key struct: `u32be 128 ‖ n ‖ u32be 3 ‖ e`.
pub const PUBLIC_STRUCT_LEN: usize = 4 + CIPHERTEXT_LEN + 4 + 3;
/// Length of an `EncryptedPasswd` blob: `0x00 ‖ fingerprint ‖ ciphertext`.
pub const BLOB_LEN: usize = 1 + 4 + CIPHERTEXT_LEN;
const EXPONENT: u64 = 65_537;

/// A private key as PKCS#1 `RSAPrivateKey` DER, as generated; redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyDer(Vec<u8>);

impl PrivateKeyDer {
    /// Wraps DER bytes read back (after unsealing) from storage. They are checked on use.
    #[must_use]
    pub fn from_bytes(der: Vec<u8>) -> PrivateKeyDer {
        PrivateKeyDer(der)
    }

    /// The DER bytes, to be sealed before storage.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for PrivateKeyDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Owns an `RSA*`; frees it once.
struct Rsa(NonNull<sys::RSA>);

impl Rsa {
    fn from_private_der(der: &[u8]) -> Result<Rsa, CryptoError> {
        // SAFETY: `der` is a valid slice for `der.len()` bytes; AWS-LC copies what it parses and
        // returns either null or a new object we own.
        let ptr = unsafe { sys::RSA_private_key_from_bytes(der.as_ptr(), der.len()) };
        let rsa = NonNull::new(ptr).map(Rsa).ok_or(CryptoError::InvalidKey("rsa private key"))?;
        if rsa.bits() != BITS || rsa.public_exponent()? != EXPONENT.to_be_bytes()[5..] {
            return Err(CryptoError::InvalidKey("not an RSA-1024 key with e = 65537"));
        }
        // SAFETY: the pointer is live and owned by `rsa`.
        if unsafe { sys::RSA_check_key(rsa.0.as_ptr()) } != 1 {
            return Err(CryptoError::InvalidKey("rsa private key"));
        }
        Ok(rsa)
    }

    fn bits(&self) -> u32 {
        // SAFETY: the pointer is live and owned by `self`.
        unsafe { sys::RSA_bits(self.0.as_ptr()) }
    }

    fn bn_bytes(bn: *const sys::BIGNUM) -> Result<Vec<u8>, CryptoError> {
        if bn.is_null() {
            return Err(CryptoError::InvalidKey("rsa component"));
        }
        // SAFETY: `bn` is non-null and borrowed from a live RSA object.
        let len = unsafe { sys::BN_num_bytes(bn) } as usize;
        let mut out = vec![0_u8; len];
        // SAFETY: `out` has exactly `len` writable bytes.
        if unsafe { sys::BN_bn2bin_padded(out.as_mut_ptr(), len, bn) } != 1 {
            return Err(CryptoError::InvalidKey("rsa component"));
        }
        Ok(out)
    }

    fn modulus(&self) -> Result<Vec<u8>, CryptoError> {
        // SAFETY: the pointer is live; the returned BIGNUM is borrowed, not owned.
        Rsa::bn_bytes(unsafe { sys::RSA_get0_n(self.0.as_ptr()) })
    }

    fn public_exponent(&self) -> Result<Vec<u8>, CryptoError> {
        // SAFETY: as for `modulus`.
        Rsa::bn_bytes(unsafe { sys::RSA_get0_e(self.0.as_ptr()) })
    }

    fn private_der(&self) -> Result<PrivateKeyDer, CryptoError> {
        let mut out: *mut u8 = std::ptr::null_mut();
        let mut len: usize = 0;
        // SAFETY: AWS-LC allocates `out` (freed by `Buf`) and writes its length to `len`.
        let ok = unsafe { sys::RSA_private_key_to_bytes(&mut out, &mut len, self.0.as_ptr()) };
        let buf = Buf(out);
        if ok != 1 || out.is_null() {
            return Err(CryptoError::KeyGeneration);
        }
        // SAFETY: AWS-LC wrote `len` bytes at `out`, which stays allocated until `buf` drops.
        let bytes = unsafe { std::slice::from_raw_parts(out, len) }.to_vec();
        drop(buf);
        Ok(PrivateKeyDer(bytes))
    }
}

impl Drop for Rsa {
    fn drop(&mut self) {
        // SAFETY: we own the object and free it once.
        unsafe { sys::RSA_free(self.0.as_ptr()) }
    }
}

/// Owns a `BIGNUM*`.
struct Bn(NonNull<sys::BIGNUM>);

impl Drop for Bn {
    fn drop(&mut self) {
        // SAFETY: we own the object and free it once.
        unsafe { sys::BN_free(self.0.as_ptr()) }
    }
}

/// Owns a buffer AWS-LC allocated.
struct Buf(*mut u8);

impl Drop for Buf {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: AWS-LC allocated it with OPENSSL_malloc; freed once here.
            unsafe { sys::OPENSSL_free(self.0.cast()) }
        }
    }
}

/// Generates a new RSA-1024 key with e = 65537.
///
/// # Errors
///
/// [`CryptoError::KeyGeneration`] if AWS-LC fails.
pub fn generate() -> Result<PrivateKeyDer, CryptoError> {
    // SAFETY: both constructors return null or a new object we own.
    let rsa = NonNull::new(unsafe { sys::RSA_new() }).map(Rsa).ok_or(CryptoError::KeyGeneration)?;
    let e = NonNull::new(unsafe { sys::BN_new() }).map(Bn).ok_or(CryptoError::KeyGeneration)?;
    // SAFETY: `e` is live and owned.
    if unsafe { sys::BN_set_word(e.0.as_ptr(), EXPONENT as sys::BN_ULONG) } != 1 {
        return Err(CryptoError::KeyGeneration);
    }
    // SAFETY: `rsa` and `e` are live; no callback. AWS-LC copies `e`.
    let ok = unsafe {
        sys::RSA_generate_key_ex(rsa.0.as_ptr(), BITS as i32, e.0.as_ptr(), std::ptr::null_mut())
    };
    if ok != 1 {
        return Err(CryptoError::KeyGeneration);
    }
    rsa.private_der()
}

/// The published public key: `u32be len(n) ‖ n ‖ u32be len(e) ‖ e` (139 bytes), the struct
/// Android clients carry in base64.
///
/// # Errors
///
/// [`CryptoError::InvalidKey`] if `key` is not an RSA-1024 key with e = 65537.
pub fn public_struct(key: &PrivateKeyDer) -> Result<Vec<u8>, CryptoError> {
    let rsa = Rsa::from_private_der(key.as_bytes())?;
    let n = rsa.modulus()?;
    let e = rsa.public_exponent()?;
    let mut out = Vec::with_capacity(PUBLIC_STRUCT_LEN);
    for part in [&n, &e] {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(part);
    }
    Ok(out)
}

/// The key's fingerprint: the first four bytes of SHA-1 of its public struct.
#[must_use]
pub fn fingerprint(public_struct: &[u8]) -> [u8; 4] {
    let hash = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, public_struct);
    let mut out = [0_u8; 4];
    out.copy_from_slice(&hash.as_ref()[..4]);
    out
}

/// Decrypts one RSAES-OAEP (SHA-1, MGF1-SHA-1, empty label) ciphertext with `key`.
///
/// # Errors
///
/// [`CryptoError::Decrypt`] for a ciphertext that does not decrypt (wrong length, wrong key,
/// bad padding) — one error for all, so no padding oracle is exposed;
/// [`CryptoError::InvalidKey`] if the key does not load.
pub fn decrypt(key: &PrivateKeyDer, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if ciphertext.len() != CIPHERTEXT_LEN {
        return Err(CryptoError::Decrypt);
    }
    let rsa = Rsa::from_private_der(key.as_bytes())?;
    let mut out = vec![0_u8; CIPHERTEXT_LEN];
    // SAFETY: `ciphertext` is readable for its length, `out` writable for RSA_size (128) bytes,
    // and `rsa` is live. AWS-LC's OAEP default is SHA-1 with MGF1-SHA-1 and an empty label.
    let written = unsafe {
        sys::RSA_private_decrypt(
            ciphertext.len(),
            ciphertext.as_ptr(),
            out.as_mut_ptr(),
            rsa.0.as_ptr(),
            sys::RSA_PKCS1_OAEP_PADDING,
        )
    };
    // SAFETY: clears the error AWS-LC queued on this thread for a refused ciphertext.
    unsafe { sys::ERR_clear_error() };
    let written = usize::try_from(written).map_err(|_| CryptoError::Decrypt)?;
    if written > out.len() {
        return Err(CryptoError::Decrypt);
    }
    out.truncate(written);
    Ok(out)
}

/// Encrypts `plaintext` to a published public struct, as a client does (tests, the demo and
/// client-side tools; the server only decrypts).
///
/// # Errors
///
/// [`CryptoError::InvalidKey`] for a malformed struct; [`CryptoError::Encrypt`] if the plaintext
/// is too long for OAEP (more than 86 bytes).
pub fn encrypt(public_struct: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let (n, e) = split_public_struct(public_struct).ok_or(CryptoError::InvalidKey("struct"))?;
    let der = public_key_der(n, e);
    // SAFETY: `der` is readable for its length; the result is null or a new object we own.
    let ptr = unsafe { sys::RSA_public_key_from_bytes(der.as_ptr(), der.len()) };
    let rsa = NonNull::new(ptr).map(Rsa).ok_or(CryptoError::InvalidKey("rsa public key"))?;
    if rsa.bits() != BITS {
        return Err(CryptoError::InvalidKey("not an RSA-1024 key"));
    }
    let mut out = vec![0_u8; CIPHERTEXT_LEN];
    // SAFETY: `plaintext` readable, `out` writable for 128 bytes (RSA_size), `rsa` live.
    let written = unsafe {
        sys::RSA_public_encrypt(
            plaintext.len(),
            plaintext.as_ptr(),
            out.as_mut_ptr(),
            rsa.0.as_ptr(),
            sys::RSA_PKCS1_OAEP_PADDING,
        )
    };
    // SAFETY: see `decrypt`.
    unsafe { sys::ERR_clear_error() };
    if usize::try_from(written).ok() != Some(CIPHERTEXT_LEN) {
        return Err(CryptoError::Encrypt);
    }
    Ok(out)
}

/// `(n, e)` of a public struct, if it is well formed.
fn split_public_struct(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (n, rest) = length_prefixed(data)?;
    let (e, rest) = length_prefixed(rest)?;
    rest.is_empty().then_some((n, e))
}

fn length_prefixed(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let body = data.get(4..4 + len)?;
    Some((body, &data[4 + len..]))
}

/// PKCS#1 `RSAPublicKey` DER from big-endian `n` and `e`.
fn public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let trimmed: &[u8] = {
            let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
            &bytes[start..]
        };
        let mut body = Vec::with_capacity(trimmed.len() + 1);
        if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
            body.push(0);
        }
        body.extend_from_slice(trimmed);
        tlv(0x02, &body)
    }
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = body.len();
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend_from_slice(&[0x81, len as u8]);
        } else {
            out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(body);
        out
    }
    let mut seq = integer(n);
    seq.extend_from_slice(&integer(e));
    tlv(0x30, &seq)
}

/// Splits an `EncryptedPasswd` blob into its fingerprint and ciphertext, if it has the shape
/// `0x00 ‖ fingerprint(4) ‖ ciphertext(128)`.
#[must_use]
pub fn split_blob(blob: &[u8]) -> Option<([u8; 4], &[u8])> {
    if blob.len() != BLOB_LEN || blob[0] != 0 {
        return None;
    }
    let mut fp = [0_u8; 4];
    fp.copy_from_slice(&blob[1..5]);
    Some((fp, &blob[5..]))
}

/// Builds an `EncryptedPasswd` blob for `email` and `password` (client side: tests and tools).
///
/// # Errors
///
/// As [`encrypt`].
pub fn blob(public_struct: &[u8], email: &str, password: &str) -> Result<Vec<u8>, CryptoError> {
    let mut plain = email.as_bytes().to_vec();
    plain.push(0);
    plain.extend_from_slice(password.as_bytes());
    let ciphertext = encrypt(public_struct, &plain)?;
    let mut out = Vec::with_capacity(BLOB_LEN);
    out.push(0);
    out.extend_from_slice(&fingerprint(public_struct));
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// gpsoauth's constant for Google's published key (Play Services 7.3.29).
    const GOOGLE_KEY_B64: &str = "AAAAgMom/1a/v0lblO2Ubrt60J2gcuXSljGFQXgcyZWveWLEwo6prwgi3iJIZdodyhKZQrNWp5nKJ3srRXcUW+F1BD3baEVGcmEgqaLZUNBjm057pKRI16kB0YppeGx5qIQ5QjKzsR8ETQbKLNWgRY0QRNVz34kMJR3P/LgHax/6rmf5AAAAAwEAAQ==";

    #[test]
    fn generated_keys_have_the_published_shape_and_round_trip() {
        let key = generate().expect("generate");
        let public = public_struct(&key).expect("public");
        assert_eq!(public.len(), PUBLIC_STRUCT_LEN);
        assert_eq!(&public[..4], &[0, 0, 0, 0x80]);
        assert_eq!(&public[132..], &[0, 0, 0, 3, 1, 0, 1]);
        let blob = blob(&public, "alice@example.com", "pässword").expect("blob");
        let (fp, ciphertext) = split_blob(&blob).expect("shape");
        assert_eq!(fp, fingerprint(&public));
        let plain = decrypt(&key, ciphertext).expect("decrypt");
        assert_eq!(plain, "alice@example.com\0pässword".as_bytes());
    }

    #[test]
    fn google_key_fingerprint_matches_the_reference() {
        use base64::Engine as _;
        let public = base64::engine::general_purpose::STANDARD.decode(GOOGLE_KEY_B64).expect("b64");
        assert_eq!(public.len(), PUBLIC_STRUCT_LEN);
        assert_eq!(fingerprint(&public), [0x57, 0x1b, 0xe0, 0xa4]);
        // A client can encrypt to it; we cannot decrypt, which is the point.
        assert_eq!(encrypt(&public, b"x").expect("encrypt").len(), CIPHERTEXT_LEN);
    }

    #[test]
    fn tampered_wrong_key_and_malformed_inputs_are_one_error() {
        let key = generate().expect("generate");
        let other = generate().expect("generate");
        let public = public_struct(&key).expect("public");
        let mut ciphertext = encrypt(&public, b"a\0b").expect("encrypt");
        assert_eq!(decrypt(&other, &ciphertext), Err(CryptoError::Decrypt));
        ciphertext[7] ^= 1;
        assert_eq!(decrypt(&key, &ciphertext), Err(CryptoError::Decrypt));
        assert_eq!(decrypt(&key, &ciphertext[1..]), Err(CryptoError::Decrypt));
        assert_eq!(decrypt(&key, &[]), Err(CryptoError::Decrypt));
        assert!(decrypt(&PrivateKeyDer::from_bytes(vec![1, 2, 3]), &[0; 128]).is_err());
        assert!(split_blob(&[0; 10]).is_none());
        assert!(encrypt(&[0, 0, 0, 9], b"x").is_err());
        assert_eq!(format!("{key:?}"), REDACTED);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_ciphertexts_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = split_blob(&bytes);
            let _ = split_public_struct(&bytes);
            let _ = encrypt(&bytes, b"x");
        }
    }
}
