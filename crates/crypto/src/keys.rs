//! Asymmetric signing keys for JWTs: RS256, ES256 and EdDSA (Ed25519), stored as PKCS#8.
//!
//! This module exposes the raw public key parts so that another crate can build JWKs; it does
//! no JSON itself.

use aws_lc_rs::encoding::{AsDer as _, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair,
    UnparsedPublicKey,
};

use crate::CryptoError;
use crate::random::Rng;

/// A JWS signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, using 2048-bit keys when generating.
    Rs256,
    /// ECDSA on P-256 with SHA-256, fixed-length (r || s) signatures as JWS requires.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl KeyAlg {
    /// All supported algorithms.
    pub const ALL: [KeyAlg; 3] = [KeyAlg::Rs256, KeyAlg::Es256, KeyAlg::EdDsa];

    /// Returns the JWS `alg` name: `"RS256"`, `"ES256"` or `"EdDSA"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlg::Rs256 => "RS256",
            KeyAlg::Es256 => "ES256",
            KeyAlg::EdDsa => "EdDSA",
        }
    }

    /// Parses a JWS `alg` name; the match is exact, as in JWS headers.
    ///
    /// # Errors
    ///
    /// Returns [`CryptoError::UnsupportedAlgorithm`] for any other name, including `"none"`.
    pub fn parse(name: &str) -> Result<KeyAlg, CryptoError> {
        KeyAlg::ALL
            .into_iter()
            .find(|alg| alg.as_str() == name)
            .ok_or(CryptoError::UnsupportedAlgorithm)
    }
}

impl std::fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for KeyAlg {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyAlg::parse(s)
    }
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private signing key together with its PKCS#8 DER encoding.
///
/// Its `Debug` output is redacted and it cannot be serialised; persist [`SigningKey::pkcs8_der`]
/// deliberately, for example sealed with [`crate::Kek::seal`].
pub struct SigningKey {
    alg: KeyAlg,
    pair: Pair,
    pkcs8: Vec<u8>,
}

impl SigningKey {
    /// Generates a fresh key: RSA 2048 for RS256, P-256 for ES256 and Ed25519 for EdDSA.
    ///
    /// # Errors
    ///
    /// Returns [`CryptoError::KeyGeneration`] if the library fails.
    pub fn generate(alg: KeyAlg) -> Result<SigningKey, CryptoError> {
        let pkcs8 = match alg {
            KeyAlg::Rs256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| CryptoError::KeyGeneration)?;
                let der: Pkcs8V1Der<'static> =
                    pair.as_der().map_err(|_| CryptoError::KeyGeneration)?;
                der.as_ref().to_vec()
            }
            KeyAlg::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|pair| pair.to_pkcs8v1())
                .map_err(|_| CryptoError::KeyGeneration)?
                .as_ref()
                .to_vec(),
            KeyAlg::EdDsa => Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
                .map_err(|_| CryptoError::KeyGeneration)?
                .as_ref()
                .to_vec(),
        };
        SigningKey::from_pkcs8(alg, &pkcs8).map_err(|_| CryptoError::KeyGeneration)
    }

    /// Loads a key of algorithm `alg` from unencrypted PKCS#8 DER.
    ///
    /// # Errors
    ///
    /// Returns [`CryptoError::InvalidKey`] if the DER is malformed or holds a key of another
    /// type (or an RSA key outside 2048 to 8192 bits).
    pub fn from_pkcs8(alg: KeyAlg, der: &[u8]) -> Result<SigningKey, CryptoError> {
        let pair = match alg {
            KeyAlg::Rs256 => RsaKeyPair::from_pkcs8(der)
                .map(Pair::Rsa)
                .map_err(|_| CryptoError::InvalidKey("not an acceptable RSA PKCS#8 key"))?,
            KeyAlg::Es256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map(Pair::Ec)
                .map_err(|_| CryptoError::InvalidKey("not a P-256 PKCS#8 key"))?,
            KeyAlg::EdDsa => Ed25519KeyPair::from_pkcs8(der)
                .map(Pair::Ed)
                .map_err(|_| CryptoError::InvalidKey("not an Ed25519 PKCS#8 key"))?,
        };
        Ok(SigningKey { alg, pair, pkcs8: der.to_vec() })
    }

    /// Returns the key's algorithm.
    #[must_use]
    pub fn alg(&self) -> KeyAlg {
        self.alg
    }

    /// Returns the private key as PKCS#8 DER, exactly as generated or loaded.
    #[must_use]
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Returns the public key bytes that [`verify`] takes: the PKCS#1 `RSAPublicKey` DER for
    /// RS256, the uncompressed SEC1 point (65 bytes) for ES256 and the raw 32-byte key for
    /// EdDSA.
    #[must_use]
    pub fn public_key_der(&self) -> Vec<u8> {
        match &self.pair {
            Pair::Rsa(pair) => pair.public_key().as_ref().to_vec(),
            Pair::Ec(pair) => pair.public_key().as_ref().to_vec(),
            Pair::Ed(pair) => pair.public_key().as_ref().to_vec(),
        }
    }

    /// Returns the RSA modulus `n` and public exponent `e` as unsigned big-endian bytes
    /// without leading zeros (the JWK `n` and `e` before base64url), or `None` for other keys.
    #[must_use]
    pub fn rsa_public_components(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        match &self.pair {
            Pair::Rsa(pair) => {
                let public = pair.public_key();
                Some((
                    public.modulus().big_endian_without_leading_zero().to_vec(),
                    public.exponent().big_endian_without_leading_zero().to_vec(),
                ))
            }
            Pair::Ec(_) | Pair::Ed(_) => None,
        }
    }

    /// Returns the uncompressed P-256 point `0x04 || x || y` (65 bytes) for ES256 keys, or
    /// `None` for other keys. The JWK `x` and `y` are bytes 1..33 and 33..65.
    #[must_use]
    pub fn ec_public_point(&self) -> Option<Vec<u8>> {
        match &self.pair {
            Pair::Ec(pair) => Some(pair.public_key().as_ref().to_vec()),
            Pair::Rsa(_) | Pair::Ed(_) => None,
        }
    }

    /// Signs `msg`: RSASSA-PKCS1-v1_5 SHA-256, fixed-length ECDSA P-256 SHA-256 (64 bytes)
    /// or Ed25519 (64 bytes).
    ///
    /// `rng` is accepted for API symmetry but unused: aws-lc-rs draws ECDSA nonces from its
    /// own generator, and RSA PKCS#1 v1.5 and Ed25519 signing are deterministic.
    ///
    /// # Errors
    ///
    /// Returns [`CryptoError::Signing`] if the library fails.
    pub fn sign(&self, rng: &dyn Rng, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let _ = rng;
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
                    .map_err(|_| CryptoError::Signing)?;
                Ok(sig)
            }
            Pair::Ec(pair) => pair
                .sign(&SystemRandom::new(), msg)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| CryptoError::Signing),
            Pair::Ed(pair) => pair
                .try_sign(msg)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| CryptoError::Signing),
        }
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("private_key", &crate::REDACTED)
            .finish()
    }
}

/// Verifies `sig` over `msg` with the public key bytes from [`SigningKey::public_key_der`].
///
/// RS256 also accepts an X.509 `SubjectPublicKeyInfo` DER and RSA keys of 2048 to 8192 bits.
/// Returns `false` for any malformed key or signature.
#[must_use]
pub fn verify(alg: KeyAlg, public_der: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let algorithm: &'static dyn signature::VerificationAlgorithm = match alg {
        KeyAlg::Rs256 => &RSA_PKCS1_2048_8192_SHA256,
        KeyAlg::Es256 => &ECDSA_P256_SHA256_FIXED,
        KeyAlg::EdDsa => &ED25519,
    };
    UnparsedPublicKey::new(algorithm, public_der).verify(msg, sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::FixedRng;
    use std::sync::OnceLock;

    /// RSA generation is slow in debug builds, so the tests share one key per algorithm.
    fn key(alg: KeyAlg) -> &'static SigningKey {
        static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
        let keys = KEYS.get_or_init(|| {
            KeyAlg::ALL.iter().map(|&a| SigningKey::generate(a).unwrap()).collect()
        });
        keys.iter().find(|k| k.alg() == alg).unwrap()
    }

    #[test]
    fn signing_keys_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SigningKey>();
    }

    #[test]
    fn alg_names_round_trip() {
        for alg in KeyAlg::ALL {
            assert_eq!(KeyAlg::parse(alg.as_str()), Ok(alg));
            assert_eq!(alg.as_str().parse::<KeyAlg>(), Ok(alg));
            assert_eq!(alg.to_string(), alg.as_str());
        }
        assert_eq!(KeyAlg::Rs256.as_str(), "RS256");
        assert_eq!(KeyAlg::Es256.as_str(), "ES256");
        assert_eq!(KeyAlg::EdDsa.as_str(), "EdDSA");
        for bad in ["none", "HS256", "rs256", "EDDSA", "", "ES384"] {
            assert_eq!(KeyAlg::parse(bad), Err(CryptoError::UnsupportedAlgorithm), "{bad}");
        }
    }

    #[test]
    fn sign_verify_and_tamper() {
        let rng = FixedRng::new(b"sign");
        for alg in KeyAlg::ALL {
            let key = key(alg);
            let public = key.public_key_der();
            let msg = b"header.payload";
            let sig = key.sign(&rng, msg).unwrap();
            assert!(verify(alg, &public, msg, &sig), "{alg}");
            assert!(!verify(alg, &public, b"header.payloaD", &sig), "{alg}");
            let mut bad = sig.clone();
            bad[0] ^= 1;
            assert!(!verify(alg, &public, msg, &bad), "{alg}");
            assert!(!verify(alg, &public, msg, &sig[..sig.len() - 1]), "{alg}");
            assert!(!verify(alg, &public, msg, &[]), "{alg}");
            assert!(!verify(alg, b"not a key", msg, &sig), "{alg}");
            // A signature never verifies under another algorithm or another key.
            for other in KeyAlg::ALL.into_iter().filter(|&o| o != alg) {
                assert!(!verify(other, &public, msg, &sig), "{alg} as {other}");
                assert!(!verify(alg, &key_for_other(alg), msg, &sig), "{alg}");
            }
        }
    }

    fn key_for_other(alg: KeyAlg) -> Vec<u8> {
        SigningKey::generate(if alg == KeyAlg::Rs256 { KeyAlg::Es256 } else { alg })
            .unwrap()
            .public_key_der()
    }

    #[test]
    fn signature_sizes() {
        let rng = FixedRng::new(b"sizes");
        assert_eq!(key(KeyAlg::Rs256).sign(&rng, b"m").unwrap().len(), 256);
        assert_eq!(key(KeyAlg::Es256).sign(&rng, b"m").unwrap().len(), 64);
        assert_eq!(key(KeyAlg::EdDsa).sign(&rng, b"m").unwrap().len(), 64);
        // RS256 and EdDSA are deterministic.
        assert_eq!(
            key(KeyAlg::EdDsa).sign(&rng, b"m").unwrap(),
            key(KeyAlg::EdDsa).sign(&rng, b"m").unwrap()
        );
        assert_eq!(
            key(KeyAlg::Rs256).sign(&rng, b"m").unwrap(),
            key(KeyAlg::Rs256).sign(&rng, b"m").unwrap()
        );
    }

    #[test]
    fn pkcs8_round_trip() {
        let rng = FixedRng::new(b"pkcs8");
        for alg in KeyAlg::ALL {
            let key = key(alg);
            let loaded = SigningKey::from_pkcs8(alg, key.pkcs8_der()).unwrap();
            assert_eq!(loaded.pkcs8_der(), key.pkcs8_der());
            assert_eq!(loaded.public_key_der(), key.public_key_der());
            let sig = loaded.sign(&rng, b"msg").unwrap();
            assert!(verify(alg, &key.public_key_der(), b"msg", &sig));
            // The DER of one algorithm is refused as another.
            for other in KeyAlg::ALL.into_iter().filter(|&o| o != alg) {
                assert!(matches!(
                    SigningKey::from_pkcs8(other, key.pkcs8_der()),
                    Err(CryptoError::InvalidKey(_))
                ));
            }
            assert!(SigningKey::from_pkcs8(alg, b"garbage").is_err());
            assert!(
                SigningKey::from_pkcs8(alg, &key.pkcs8_der()[..key.pkcs8_der().len() - 1]).is_err()
            );
        }
    }

    #[test]
    fn rs256_verify_accepts_spki_public_keys() {
        let key = key(KeyAlg::Rs256);
        let Pair::Rsa(pair) = &key.pair else { panic!("not RSA") };
        let spki: aws_lc_rs::encoding::PublicKeyX509Der<'static> =
            pair.public_key().as_der().unwrap();
        assert_ne!(spki.as_ref(), key.public_key_der().as_slice());
        let sig = key.sign(&FixedRng::new(b"spki"), b"msg").unwrap();
        assert!(verify(KeyAlg::Rs256, spki.as_ref(), b"msg", &sig));
    }

    #[test]
    fn ed25519_pkcs8_is_version_1() {
        // A PKCS#8 v1 document has INTEGER 0 as its version; v2 would be INTEGER 1.
        let der = key(KeyAlg::EdDsa).pkcs8_der();
        assert_eq!(der.len(), 48);
        assert_eq!(&der[2..5], &[0x02, 0x01, 0x00]);
    }

    #[test]
    fn public_components() {
        let rsa = key(KeyAlg::Rs256);
        let (n, e) = rsa.rsa_public_components().unwrap();
        assert_eq!(n.len(), 256);
        assert!(n[0] & 0x80 != 0, "a 2048-bit modulus has its top bit set");
        assert_eq!(e, [0x01, 0x00, 0x01]);
        assert_eq!(rsa.ec_public_point(), None);

        let ec = key(KeyAlg::Es256);
        let point = ec.ec_public_point().unwrap();
        assert_eq!(point.len(), 65);
        assert_eq!(point[0], 0x04);
        assert_eq!(point, ec.public_key_der());
        assert_eq!(ec.rsa_public_components(), None);

        let ed = key(KeyAlg::EdDsa);
        assert_eq!(ed.public_key_der().len(), 32);
        assert_eq!(ed.ec_public_point(), None);
        assert_eq!(ed.rsa_public_components(), None);
    }

    #[test]
    fn debug_is_redacted() {
        for alg in KeyAlg::ALL {
            let text = format!("{:?}", key(alg));
            assert!(text.contains("[redacted]"), "{text}");
            assert!(text.contains(&format!("{alg:?}")));
            assert!(text.len() < 80, "{text}");
        }
    }
}
