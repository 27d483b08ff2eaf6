//! Shared test helpers: real signing keys, JWT signing and serving a router on 127.0.0.1:0.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// Serves `router` on an ephemeral local port and returns its base URL (`http://127.0.0.1:PORT`).
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWS signing key with its public JWK.
pub enum TestKey {
    Rsa { kid: String, pair: RsaKeyPair },
    Ec { kid: String, pair: EcdsaKeyPair },
}

impl TestKey {
    pub fn rsa(kid: &str) -> Self {
        Self::Rsa { kid: kid.to_owned(), pair: RsaKeyPair::generate(KeySize::Rsa2048).unwrap() }
    }

    pub fn ec(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        Self::Ec { kid: kid.to_owned(), pair }
    }

    pub fn kid(&self) -> &str {
        match self {
            Self::Rsa { kid, .. } | Self::Ec { kid, .. } => kid,
        }
    }

    pub fn alg(&self) -> &'static str {
        match self {
            Self::Rsa { .. } => "RS256",
            Self::Ec { .. } => "ES256",
        }
    }

    pub fn jwk(&self) -> Value {
        match self {
            Self::Rsa { kid, pair } => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
            Self::Ec { kid, pair } => {
                let point = pair.public_key().as_ref();
                json!({
                    "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
                    "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                })
            }
        }
    }

    pub fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Self::Rsa { pair, .. } => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig).unwrap();
                sig
            }
            Self::Ec { pair, .. } => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
        }
    }

    /// A compact JWS over `claims` with header `{"alg": <key alg>, "kid": <kid>}`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&json!({"alg": self.alg(), "kid": self.kid(), "typ": "JWT"}), claims)
    }

    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.sign_bytes(signing_input.as_bytes());
        format!("{signing_input}.{}", b64(&sig))
    }
}
