//! OAuth 1.0a signatures: HMAC-SHA1 (aws-lc-rs `hmac`) signing, for the front-end proxy's
//! outgoing calls, and verification of HMAC-SHA1, RSA-SHA1 by a registered certificate (the same
//! verifier as AuthSub secure tokens) and PLAINTEXT, each compared in constant time. The base string and the percent-encoding of the keys come from the caller
//! (`tessera-proto-oauth1`); this module only sees bytes.

use aws_lc_rs::hmac;
use base64::Engine as _;

use crate::authsub::{CertKey, decode_sig, verify_rsa_sha1};
use crate::digest::ct_eq;

/// The HMAC-SHA1 signature of `base_string` under `key` (`enc(consumer secret)&enc(token secret)`),
/// base64. The front-end proxy signs its outgoing calls with it (as do tests and the benchmark).
pub fn hmac_sha1_base64(key: &str, base_string: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key.as_bytes());
    let tag = hmac::sign(&key, base_string.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// A signature that travelled in a URL with a literal `+` arrives as a space after form decoding;
/// base64 has no spaces, so they are turned back.
fn signature_bytes(signature: &str) -> Option<Vec<u8>> {
    decode_sig(&signature.replace(' ', "+"))
}

/// Whether `signature` (base64) is the HMAC-SHA1 of `base_string` under `key`, in constant time
/// (aws-lc-rs `hmac::verify`).
pub fn verify_hmac_sha1(key: &str, base_string: &str, signature: &str) -> bool {
    let Some(tag) = signature_bytes(signature) else { return false };
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key.as_bytes());
    hmac::verify(&key, base_string.as_bytes(), &tag).is_ok()
}

/// Whether `signature` (base64) is an RSA-SHA1 signature of `base_string` by the certificate's key.
pub fn verify_rsa(cert: &CertKey, base_string: &str, signature: &str) -> bool {
    verify_rsa_sha1(cert, base_string.as_bytes(), &signature.replace(' ', "+"))
}

/// Whether a PLAINTEXT `signature` (already decoded from transport) equals `key`, in constant time.
pub fn verify_plaintext(key: &str, signature: &str) -> bool {
    ct_eq(key.as_bytes(), signature.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The reference's vectors (§6.1, §6.2, §6.3, §6.5): base strings from tessera-proto-oauth1's
    // wire tests, keys and signatures as given.
    const VECTORS: [(&str, &str, &str); 4] = [
        (
            "anonymous&",
            "GET&https%3A%2F%2Faccounts.example.test%2Faccounts%2FOAuthGetRequestToken&oauth_callback%3Dhttp%253A%252F%252Fapp.example.com%252Fcb%253Fx%253D1%26oauth_consumer_key%3Danonymous%26oauth_nonce%3D1234567890abcdef%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1300000000%26oauth_version%3D1.0%26scope%3Dhttps%253A%252F%252Fwww.google.com%252Fcalendar%252Ffeeds%252F%2520https%253A%252F%252Fwww.google.com%252Fm8%252Ffeeds%252F%26xoauth_displayname%3DExample%2520App",
            "GFTTAuOk48VXj2pGRq4W5xbx4hU=",
        ),
        (
            "s3cr3tConsumerSecret&",
            "POST&https%3A%2F%2Faccounts.example.test%2Faccounts%2FOAuthGetAccessToken&oauth_consumer_key%3Dwww.example.com%26oauth_nonce%3D9f8e7d6c5b4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1300000100%26oauth_token%3D4%252FAbCdEfGhIjKlMnOpQrStUvWxYz01%26oauth_version%3D1.0",
            "0/akfxmDyWPJUmiF70vBEXIx0Jc=",
        ),
        (
            "DomainConsumerSecret&",
            "GET&https%3A%2F%2Fwww.google.com%2Fm8%2Ffeeds%2Fcontacts%2Fdefault%2Ffull&max-results%3D25%26oauth_consumer_key%3Dexample.com%26oauth_nonce%3D42424242%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1300000200%26oauth_version%3D1.0%26xoauth_requestor_id%3Dalice%2540example.com",
            "yxWYSl8t4uMx4j5wEKllt6DfhAI=",
        ),
        (
            "kd94hf93k423kf44&pfkkdhi9sl3r4s00",
            "GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacation.jpg%26oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3Dkllo9940pd9333jh%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1191242096%26oauth_token%3Dnnch734d00sl2jdk%26oauth_version%3D1.0%26size%3Doriginal",
            "tR3+Ty81lMeYAr/Fid0kMTYa/WM=",
        ),
    ];

    #[test]
    fn reference_vectors_sign_and_verify() {
        for (key, base, sig) in VECTORS {
            assert_eq!(hmac_sha1_base64(key, base), sig, "{base}");
            assert!(verify_hmac_sha1(key, base, sig));
            assert!(!verify_hmac_sha1(key, &format!("{base}x"), sig));
            assert!(!verify_hmac_sha1(&format!("{key}x"), base, sig));
        }
    }

    #[test]
    fn a_plus_turned_space_still_verifies() {
        let (key, base, sig) = VECTORS[3];
        assert!(verify_hmac_sha1(key, base, &sig.replace('+', " ")));
        assert!(!verify_hmac_sha1(key, base, "not base64!"));
        assert!(!verify_hmac_sha1(key, base, ""));
    }

    #[test]
    fn plaintext_compares_the_key() {
        assert!(verify_plaintext("djr9rjt0jd78jf88&", "djr9rjt0jd78jf88&"));
        assert!(!verify_plaintext("djr9rjt0jd78jf88&", "djr9rjt0jd78jf88&x"));
    }

    #[test]
    fn rsa_sha1_uses_the_certificate() {
        let cert = crate::authsub::parse_cert_pem(
            include_str!("../tests/fixtures/authsub-1024.cert.pem").as_bytes(),
        )
        .unwrap();
        assert!(!verify_rsa(&cert, "GET&x&y", "bm90IGEgc2lnbmF0dXJl"));
    }
}
