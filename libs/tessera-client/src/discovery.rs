//! OpenID Connect Discovery 1.0: fetching `{issuer}/.well-known/openid-configuration`.

use serde::Deserialize;
use url::Url;

/// The provider metadata fields this library uses (OpenID Connect Discovery 1.0 §3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProviderMetadata {
    /// The issuer identifier; must equal the URL discovery was fetched from (§4.3).
    pub issuer: String,
    /// RFC 6749 §3.1.
    pub authorization_endpoint: Url,
    /// RFC 6749 §3.2.
    pub token_endpoint: Url,
    /// Where the signing keys are published (RFC 7517 JWK Set).
    pub jwks_uri: Url,
    /// OpenID Connect Core §5.3.
    #[serde(default)]
    pub userinfo_endpoint: Option<Url>,
    /// RFC 7009.
    #[serde(default)]
    pub revocation_endpoint: Option<Url>,
    /// RFC 7662.
    #[serde(default)]
    pub introspection_endpoint: Option<Url>,
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The issuer is not a URL.
    #[error("issuer is not a valid URL: {0}")]
    InvalidIssuer(#[from] url::ParseError),
    /// The request failed or the body was not the expected JSON.
    #[error("fetching provider metadata failed")]
    Http(#[from] reqwest::Error),
    /// The server answered with a non-success status.
    #[error("provider metadata request returned HTTP {0}")]
    Status(u16),
    /// The document names a different issuer (Discovery §4.3).
    #[error("provider metadata names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// The issuer we asked.
        expected: String,
        /// The issuer the document names.
        found: String,
    },
}

/// The discovery URL for `issuer`: the issuer with `/.well-known/openid-configuration` appended to its path.
pub fn configuration_url(issuer: &str) -> Result<Url, url::ParseError> {
    Url::parse(&format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/')))
}

/// Fetches and checks the provider metadata of `issuer`.
pub async fn discover(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<ProviderMetadata, DiscoveryError> {
    let url = configuration_url(issuer)?;
    let res = http.get(url).header(http::header::ACCEPT, "application/json").send().await?;
    if !res.status().is_success() {
        return Err(DiscoveryError::Status(res.status().as_u16()));
    }
    let metadata: ProviderMetadata = res.json().await?;
    if metadata.issuer != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: metadata.issuer,
        });
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_url_appends_well_known_path() {
        let url = configuration_url("https://accounts.example.test/").unwrap();
        assert_eq!(url.as_str(), "https://accounts.example.test/.well-known/openid-configuration");
        let url = configuration_url("https://example.test/tenant").unwrap();
        assert_eq!(url.as_str(), "https://example.test/tenant/.well-known/openid-configuration");
    }
}
