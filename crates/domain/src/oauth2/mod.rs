//! The OAuth 2.0 / OpenID Connect provider's rules: registered clients (`clients`), signed client assertions
//! and the service-account grant (`assertion`), the
//! authorization decision and consent memory (`authorize`), token issue and lookup (`tokens`),
//! the grants at the token endpoint (`exchange`), ID tokens and JWS (`jwt`), the published key set
//! (`jwks`), the device flow (`device`), revocation (`revoke`) and the cross-client identity rule (`cross_client`).
//!
//! Wire parsing lives in `tessera_proto_oauth2`; these functions take its typed requests and answer
//! with records, tokens or an RFC 6749 error.

pub mod assertion;
pub mod authorize;
pub mod clients;
pub mod cross_client;
pub mod device;
pub mod dpop;
pub mod exchange;
pub mod jwks;
pub mod jwt;
pub mod migration;
pub mod par;
pub mod request_object;
pub mod revoke;
pub mod tokens;

pub use tessera_proto_oauth2::{ErrorCode, OAuthError};

/// The grant protocol name OAuth 2.0 grants are recorded under.
pub const PROTOCOL: crate::credentials::Protocol = crate::credentials::Protocol::OAuth2;

/// Lifetimes (OAuth 2.0 §3.9 of the protocol notes).
pub const ACCESS_TOKEN_TTL_SECS: i64 = 3600;
pub const ID_TOKEN_TTL_SECS: i64 = 3600;
pub const CODE_TTL_SECS: i64 = 600;

/// Why an OAuth 2.0 operation did not succeed: a protocol error for the client, or a failure of
/// ours (store, keys) for the log.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    #[error(transparent)]
    Domain(#[from] crate::Error),
}

impl From<tessera_store::StoreError> for Failure {
    fn from(err: tessera_store::StoreError) -> Failure {
        Failure::Domain(err.into())
    }
}

pub type Outcome<T> = std::result::Result<T, Failure>;

pub(crate) fn oauth(code: ErrorCode, description: &str) -> Failure {
    Failure::OAuth(OAuthError::new(code, description))
}
