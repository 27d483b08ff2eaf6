//! OpenID 2.0 associations: Diffie-Hellman key agreement with the default group or a relying
//! party's own (validated and capped), the MAC key XORed with the hash of the shared secret, and
//! the HMAC-SHA1 / HMAC-SHA256 signatures of assertions.
//!
//! `modpow` comes from `num-bigint` and does not run in constant time. The server's exponent is
//! fresh for every association and used for one key agreement only, so timing reveals at most
//! something about a value that is thrown away; see `docs/security.md`.

use aws_lc_rs::{digest, hmac};
use num_bigint::BigUint;

use crate::CryptoError;
use crate::random::Rng;

/// The default modulus (OpenID 2.0 Appendix B), big-endian.
const DEFAULT_MODULUS_HEX: &str = "DCF93A0B883972EC0E19989AC5A2CE310E1D37717E8D9571BB7623731866E61EF75A2E27898B057F9891C2E27A639C3F29B60814581CD3B2CA3986D2683705577D45C2E7E52DC81C7A171876E5CEA74B1448BFDFAF18828EFD2519F14E45E3826634AF1949E5B535CC829A483B8A76223E5D490A257F05BDFF16F2FB22C583AB";

/// The smallest modulus a relying party may send, in bits: the default is 1024 bits, and a
/// smaller group would let an eavesdropper recover the MAC key.
pub const MIN_MODULUS_BITS: u64 = 1024;
/// The largest: bigger groups only cost us time.
pub const MAX_MODULUS_BITS: u64 = 4096;
/// The server's secret exponent has this many random bits (a short exponent, as is usual for
/// groups of this size; it keeps `modpow` cheap for a 4096-bit modulus).
const EXPONENT_BYTES: usize = 32;

/// The hash of a DH session: SHA-1 for `DH-SHA1`, SHA-256 for `DH-SHA256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhHash {
    Sha1,
    Sha256,
}

/// The MAC of an association.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mac {
    HmacSha1,
    HmacSha256,
}

impl Mac {
    fn algorithm(self) -> hmac::Algorithm {
        match self {
            Mac::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Mac::HmacSha256 => hmac::HMAC_SHA256,
        }
    }
}

/// A Diffie-Hellman group: modulus and generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhGroup {
    p: BigUint,
    g: BigUint,
}

/// The server's half of a key agreement.
#[derive(Clone, PartialEq, Eq)]
pub struct DhAnswer {
    /// `g^xb mod p`, btwoc bytes.
    pub server_public: Vec<u8>,
    /// The MAC key XORed with `H(btwoc(Z))`.
    pub enc_mac_key: Vec<u8>,
}

impl std::fmt::Debug for DhAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhAnswer").finish_non_exhaustive()
    }
}

impl DhGroup {
    /// The default group: Appendix B's 1024-bit modulus, generator 2.
    pub fn default_group() -> DhGroup {
        let p = BigUint::parse_bytes(DEFAULT_MODULUS_HEX.as_bytes(), 16).unwrap_or_default();
        DhGroup { p, g: BigUint::from(2u32) }
    }

    /// The group a relying party sent (btwoc bytes; `None` for the defaults). The modulus must be
    /// odd and of [`MIN_MODULUS_BITS`]..=[`MAX_MODULUS_BITS`] bits, and `1 < g < p - 1`.
    pub fn from_btwoc(
        modulus: Option<&[u8]>,
        generator: Option<&[u8]>,
    ) -> Result<DhGroup, CryptoError> {
        let default = DhGroup::default_group();
        let p = modulus.map(BigUint::from_bytes_be).unwrap_or(default.p);
        let g = generator.map(BigUint::from_bytes_be).unwrap_or(default.g);
        let bits = p.bits();
        if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&bits) {
            return Err(CryptoError::InvalidKey("the Diffie-Hellman modulus size"));
        }
        if !p.bit(0) {
            return Err(CryptoError::InvalidKey("the Diffie-Hellman modulus is even"));
        }
        let one = BigUint::from(1u32);
        if g <= one || g >= &p - &one {
            return Err(CryptoError::InvalidKey("the Diffie-Hellman generator"));
        }
        Ok(DhGroup { p, g })
    }

    /// The modulus's size in bits.
    pub fn bits(&self) -> u64 {
        self.p.bits()
    }

    /// Agrees on a secret with the relying party's public number (btwoc bytes, `1 < A < p - 1`)
    /// and returns our public number and `mac_key` XORed with `H(btwoc(Z))`.
    pub fn exchange(
        &self,
        rng: &dyn Rng,
        consumer_public: &[u8],
        hash: DhHash,
        mac_key: &[u8],
    ) -> Result<DhAnswer, CryptoError> {
        let one = BigUint::from(1u32);
        let a = BigUint::from_bytes_be(consumer_public);
        if a <= one || a >= &self.p - &one {
            return Err(CryptoError::InvalidKey("the Diffie-Hellman public number"));
        }
        let mut bytes = [0u8; EXPONENT_BYTES];
        rng.fill(&mut bytes);
        // In [2, 2^256 + 1], far below p - 1 for every accepted modulus.
        let x = BigUint::from_bytes_be(&bytes) + BigUint::from(2u32);
        let server_public = self.g.modpow(&x, &self.p);
        let shared = a.modpow(&x, &self.p);
        let hashed = match hash {
            DhHash::Sha1 => digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &btwoc(&shared)),
            DhHash::Sha256 => digest::digest(&digest::SHA256, &btwoc(&shared)),
        };
        if hashed.as_ref().len() != mac_key.len() {
            return Err(CryptoError::InvalidKey("the MAC key length does not fit the session"));
        }
        let enc_mac_key = hashed.as_ref().iter().zip(mac_key).map(|(h, k)| h ^ k).collect();
        Ok(DhAnswer { server_public: btwoc(&server_public), enc_mac_key })
    }
}

/// The shortest big-endian two's-complement form of a non-negative number: a leading zero byte
/// when the top bit would otherwise be set.
pub fn btwoc(n: &BigUint) -> Vec<u8> {
    let mut bytes = n.to_bytes_be();
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        bytes.insert(0, 0);
    }
    bytes
}

/// The signature of `data` with an association's MAC key.
pub fn sign(mac: Mac, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(mac.algorithm(), key), data).as_ref().to_vec()
}

/// Whether `signature` is `data`'s signature with this key, compared in constant time.
pub fn verify(mac: Mac, key: &[u8], data: &[u8], signature: &[u8]) -> bool {
    hmac::verify(&hmac::Key::new(mac.algorithm(), key), data, signature).is_ok()
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    use super::*;
    use crate::FixedRng;
    use crate::random::Rng as _;

    const VECTOR_TEXT: &str = "op_endpoint:https://accounts.example.test/accounts/o8/ud\nclaimed_id:https://accounts.example.test/accounts/o8/id?id=AItOawkExampleIdentifier0001\nidentity:https://accounts.example.test/accounts/o8/id?id=AItOawkExampleIdentifier0001\nreturn_to:https://rp.example.com/openid/return?session=abc\nresponse_nonce:2011-08-14T18:32:16Zq1w2e3r4t5y6u7\nassoc_handle:AOQobUexampleHandle0001\nns.ext1:http://openid.net/srv/ax/1.0\next1.mode:fetch_response\next1.type.email:http://axschema.org/contact/email\next1.value.email:alice@example.com\n";

    #[test]
    fn reference_signature_vector() {
        let key: Vec<u8> = (1..=20).collect();
        assert_eq!(STANDARD.encode(&key), "AQIDBAUGBwgJCgsMDQ4PEBESExQ=");
        let sig = sign(Mac::HmacSha1, &key, VECTOR_TEXT.as_bytes());
        assert_eq!(STANDARD.encode(&sig), "ud8c1Gt7dP6zij2PMBKeCYIlBIw=");
        assert!(verify(Mac::HmacSha1, &key, VECTOR_TEXT.as_bytes(), &sig));
        assert!(!verify(Mac::HmacSha1, &key, b"other", &sig));
        assert!(!verify(Mac::HmacSha256, &key, VECTOR_TEXT.as_bytes(), &sig));
    }

    #[test]
    fn default_modulus_matches_its_published_base64() {
        let group = DhGroup::default_group();
        assert_eq!(group.bits(), 1024);
        assert_eq!(
            STANDARD.encode(btwoc(&group.p)),
            "ANz5OguIOXLsDhmYmsWizjEOHTdxfo2Vcbt2I3MYZuYe91ouJ4mLBX+YkcLiemOcPym2CBRYHNOyyjmG0mg3BVd9RcLn5S3IHHoXGHblzqdLFEi/368Ygo79JRnxTkXjgmY0rxlJ5bU1zIKaSDuKdiI+XUkKJX8Fvf8W8vsixYOr"
        );
        assert_eq!(STANDARD.encode(btwoc(&group.g)), "Ag==");
        assert_eq!(btwoc(&BigUint::from(0x80u32)), vec![0, 0x80]);
        assert_eq!(btwoc(&BigUint::from(0x7fu32)), vec![0x7f]);
    }

    /// Both sides agree: the consumer recovers the MAC key from our answer.
    fn agree(hash: DhHash, key_len: usize, seed: &[u8]) {
        let group = DhGroup::default_group();
        let rng = FixedRng::new(seed);
        let mut xa = [0u8; 20];
        rng.fill(&mut xa);
        let xa = BigUint::from_bytes_be(&xa) + 2u32;
        let a = group.g.modpow(&xa, &group.p);
        let mac_key: Vec<u8> = (0..key_len as u8).collect();
        let answer = group.exchange(&rng, &btwoc(&a), hash, &mac_key).unwrap();
        let b = BigUint::from_bytes_be(&answer.server_public);
        let z = b.modpow(&xa, &group.p);
        let hashed = match hash {
            DhHash::Sha1 => digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &btwoc(&z)),
            DhHash::Sha256 => digest::digest(&digest::SHA256, &btwoc(&z)),
        };
        let recovered: Vec<u8> =
            hashed.as_ref().iter().zip(&answer.enc_mac_key).map(|(h, e)| h ^ e).collect();
        assert_eq!(recovered, mac_key);
    }

    #[test]
    fn both_sides_agree() {
        agree(DhHash::Sha1, 20, b"one");
        agree(DhHash::Sha256, 32, b"two");
    }

    #[test]
    fn refuses_bad_groups_and_public_numbers() {
        let group = DhGroup::default_group();
        let p = group.p.to_bytes_be();
        let rng = FixedRng::new(b"x");
        let key = [0u8; 20];
        for bad in
            [vec![1u8], vec![0u8], (&group.p - 1u32).to_bytes_be(), p.clone(), vec![0xff; 200]]
        {
            assert!(group.exchange(&rng, &bad, DhHash::Sha1, &key).is_err());
        }
        assert!(DhGroup::from_btwoc(Some(&[0xff; 64]), None).is_err(), "512 bits");
        assert!(DhGroup::from_btwoc(Some(&[0xff; 513]), None).is_err(), "4104 bits");
        let mut even = p.clone();
        *even.last_mut().unwrap() &= 0xfe;
        assert!(DhGroup::from_btwoc(Some(&even), None).is_err());
        assert!(DhGroup::from_btwoc(Some(&p), Some(&[1])).is_err());
        assert!(DhGroup::from_btwoc(Some(&p), Some(&p)).is_err());
        assert!(DhGroup::from_btwoc(Some(&p), Some(&[5])).is_ok());
        assert!(DhGroup::from_btwoc(Some(&[0xff; 512]), None).is_ok(), "4096 bits");
    }

    proptest! {
        #[test]
        fn arbitrary_public_numbers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let group = DhGroup::default_group();
            let _ = group.exchange(&FixedRng::new(b"p"), &bytes, DhHash::Sha256, &[0u8; 32]);
        }
    }
}
