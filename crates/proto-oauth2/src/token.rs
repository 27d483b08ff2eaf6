//! The token endpoint's request (RFC 6749 §3.2): `grant_type` picks one of `grants::*`.

use crate::grants::{
    authorization_code, client_credentials, device_code, jwt_bearer, migration, refresh_token,
    token_exchange,
};
use crate::{ErrorCode, OAuthError, Params};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequest {
    AuthorizationCode(authorization_code::Request),
    RefreshToken(refresh_token::Request),
    ClientCredentials(client_credentials::Request),
    DeviceCode(device_code::Request),
    JwtBearer(jwt_bearer::Request),
    TokenExchange(token_exchange::Request),
    /// A legacy credential traded for OAuth 2.0 tokens (`grants::migration`).
    Migration(migration::Request),
}

pub fn parse(params: &Params) -> Result<TokenRequest, OAuthError> {
    match params.require("grant_type")? {
        authorization_code::GRANT_TYPE => {
            authorization_code::parse(params).map(TokenRequest::AuthorizationCode)
        }
        refresh_token::GRANT_TYPE => refresh_token::parse(params).map(TokenRequest::RefreshToken),
        client_credentials::GRANT_TYPE => {
            client_credentials::parse(params).map(TokenRequest::ClientCredentials)
        }
        device_code::GRANT_TYPE | device_code::GOOGLE_GRANT_TYPE => {
            device_code::parse(params).map(TokenRequest::DeviceCode)
        }
        jwt_bearer::GRANT_TYPE => jwt_bearer::parse(params).map(TokenRequest::JwtBearer),
        token_exchange::GRANT_TYPE => {
            token_exchange::parse(params).map(TokenRequest::TokenExchange)
        }
        migration::OAUTH1_GRANT_TYPE => {
            migration::parse_oauth1(params).map(TokenRequest::Migration)
        }
        migration::LEGACY_GRANT_TYPE => {
            migration::parse_legacy(params).map(TokenRequest::Migration)
        }
        _ => Err(OAuthError::new(ErrorCode::UnsupportedGrantType, "Unsupported grant_type.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatches_on_grant_type() {
        let params = Params::from_pairs([
            ("grant_type", "authorization_code"),
            ("code", "4/abc"),
            ("redirect_uri", "https://a/cb"),
        ]);
        let TokenRequest::AuthorizationCode(req) = parse(&params).unwrap() else {
            panic!("wrong grant")
        };
        assert_eq!(req.code, "4/abc");
        assert_eq!(req.redirect_uri.as_deref(), Some("https://a/cb"));
        let err = parse(&Params::from_pairs([("grant_type", "password")])).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedGrantType);
        let err = parse(&Params::from_pairs([("grant_type", "refresh_token")])).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        let exchange = Params::from_pairs([
            ("grant_type", token_exchange::GRANT_TYPE),
            ("subject_token", "t"),
            ("subject_token_type", token_exchange::ACCESS_TOKEN_TYPE),
        ]);
        assert_eq!(parse(&exchange).unwrap_err().code, ErrorCode::InvalidTarget);
    }
}
