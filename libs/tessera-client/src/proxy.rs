//! The front-end token proxy's wire form (`POST /proxy/request?app=CLIENT_ID`): build the JSON
//! request a front-end sends, and read the answer — the resource's status, headers and body, or
//! the `oauthApprovalUrl` to open when the person has not approved the app yet, or a refusal.
//!
//! A front-end in a browser sends the request with its tessera session cookie, its `Origin`, and
//! the [`PROXY_HEADER`]; tessera attaches the credential and never returns it.
//!
//! ```no_run
//! # async fn run() -> Result<(), tessera_client::proxy::ProxyError> {
//! use tessera_client::proxy::{ProxyAnswer, ProxyRequest};
//! let accounts = url::Url::parse("https://accounts.example").unwrap();
//! let request = ProxyRequest::get("https://api.example/feeds/default").header("Accept", "application/json");
//! let http = reqwest::Client::new();
//! let answer = request.send(&http, &accounts, "123-abc.apps.tessera", "https://app.example").await?;
//! match answer {
//!     ProxyAnswer::Resource { status, body, .. } => println!("{status}: {} bytes", body.len()),
//!     ProxyAnswer::Approval { url } => println!("open {url}"),
//!     ProxyAnswer::Refused { error, .. } => println!("refused: {error}"),
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

/// The header (name, value) every proxied request carries; a cross-origin page cannot send it
/// without the CORS preflight that only the app's registered origins pass.
pub const PROXY_HEADER: (&str, &str) = ("X-Tessera-Proxy", "1");

/// Why a proxy answer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request could not be sent or its answer not read.
    #[error("proxy request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The answer is not one the proxy gives.
    #[error("unexpected proxy answer: {0}")]
    Malformed(String),
}

/// What a front-end asks the proxy to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRequest {
    /// The resource URL; it must lie under one of the app's registered prefixes.
    pub url: String,
    /// `GET`, `HEAD`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// Forwarded headers (tessera forwards only `Accept`, `Content-Type` and a few others).
    pub headers: BTreeMap<String, String>,
    /// The request body, as text.
    pub body: Option<String>,
    /// Where the approval page returns to (under one of the app's origins).
    pub return_to: Option<String>,
    /// Which signed-in account asks (`authuser`); the first by default.
    pub authuser: Option<u32>,
}

impl ProxyRequest {
    /// A `GET` of `url`.
    pub fn get(url: &str) -> ProxyRequest {
        ProxyRequest {
            url: url.to_owned(),
            method: "GET".to_owned(),
            headers: BTreeMap::new(),
            body: None,
            return_to: None,
            authuser: None,
        }
    }

    /// Another method, with a text body.
    #[must_use]
    pub fn with_body(mut self, method: &str, body: &str) -> ProxyRequest {
        self.method = method.to_owned();
        self.body = Some(body.to_owned());
        self
    }

    /// Adds a header to forward.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> ProxyRequest {
        self.headers.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Where the approval page sends the person back to.
    #[must_use]
    pub fn return_to(mut self, url: &str) -> ProxyRequest {
        self.return_to = Some(url.to_owned());
        self
    }

    /// The JSON body tessera reads.
    pub fn to_json(&self) -> Value {
        let mut out = json!({ "url": self.url, "method": self.method });
        if !self.headers.is_empty() {
            out["headers"] = json!(self.headers);
        }
        if let Some(body) = &self.body {
            out["body"] = json!(body);
        }
        if let Some(back) = &self.return_to {
            out["returnTo"] = json!(back);
        }
        if let Some(authuser) = self.authuser {
            out["authuser"] = json!(authuser.to_string());
        }
        out
    }

    /// `POST {accounts}/proxy/request?app={app}`.
    pub fn endpoint(accounts: &url::Url, app: &str) -> url::Url {
        let mut url = accounts.clone();
        url.set_path("/proxy/request");
        url.query_pairs_mut().clear().append_pair("app", app);
        url
    }

    /// Sends the request as a front-end served from `origin` would (the session cookie is the
    /// `http` client's business) and reads the answer.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        accounts: &url::Url,
        app: &str,
        origin: &str,
    ) -> Result<ProxyAnswer, ProxyError> {
        let res = http
            .post(ProxyRequest::endpoint(accounts, app))
            .header("origin", origin)
            .header(PROXY_HEADER.0, PROXY_HEADER.1)
            .json(&self.to_json())
            .send()
            .await?;
        let status = res.status().as_u16();
        let body = res.bytes().await?;
        ProxyAnswer::parse(status, &body)
    }
}

/// What the proxy answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyAnswer {
    /// The resource's answer: its status, the headers tessera passes (lowercase names), its body.
    Resource {
        /// The resource's HTTP status.
        status: u16,
        /// The headers passed back.
        headers: BTreeMap<String, String>,
        /// The body (decoded from base64 when it was not UTF-8).
        body: Vec<u8>,
    },
    /// The person has not approved the app (or is not signed in): open this page; it returns to
    /// the front-end.
    Approval {
        /// The approval page's URL (`response.oauthApprovalUrl` in gadget terms).
        url: String,
    },
    /// tessera refused the call.
    Refused {
        /// The proxy endpoint's HTTP status.
        http_status: u16,
        /// The error code, such as `url_not_allowed` or `address_not_allowed`.
        error: String,
        /// What it means, in words.
        description: String,
    },
}

impl ProxyAnswer {
    /// Reads an answer of the proxy endpoint.
    pub fn parse(http_status: u16, body: &[u8]) -> Result<ProxyAnswer, ProxyError> {
        let malformed = |why: &str| ProxyError::Malformed(why.to_owned());
        let value: Value = serde_json::from_slice(body).map_err(|_| malformed("not JSON"))?;
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        if let Some(error) = text("error") {
            let description = text("error_description").unwrap_or_default();
            return Ok(ProxyAnswer::Refused { http_status, error, description });
        }
        if let Some(url) = text("oauthApprovalUrl") {
            return Ok(ProxyAnswer::Approval { url });
        }
        let status = value
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|it| u16::try_from(it).ok())
            .ok_or_else(|| malformed("no status"))?;
        let headers = value
            .get("headers")
            .and_then(Value::as_object)
            .map(|map| {
                map.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect()
            })
            .unwrap_or_default();
        let body = match (text("body"), text("bodyBase64")) {
            (Some(body), _) => body.into_bytes(),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| malformed("bodyBase64 is not base64"))?,
            (None, None) => Vec::new(),
        };
        Ok(ProxyAnswer::Resource { status, headers, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_serialise_as_tessera_reads_them() {
        let request = ProxyRequest::get("https://api.example/feeds/a")
            .header("Accept", "application/json")
            .return_to("https://app.example/reader");
        assert_eq!(
            request.to_json(),
            json!({
                "url": "https://api.example/feeds/a",
                "method": "GET",
                "headers": { "Accept": "application/json" },
                "returnTo": "https://app.example/reader",
            })
        );
        let posted = ProxyRequest::get("https://api.example/feeds/a").with_body("POST", "x=1");
        assert_eq!(posted.to_json()["body"], "x=1");
        let accounts = url::Url::parse("https://accounts.example/base?q=1").unwrap();
        assert_eq!(
            ProxyRequest::endpoint(&accounts, "1-a b").as_str(),
            "https://accounts.example/proxy/request?app=1-a+b"
        );
    }

    #[test]
    fn every_answer_shape_is_read() {
        let resource = br#"{"status":200,"headers":{"content-type":"text/plain"},"body":"feed"}"#;
        assert_eq!(
            ProxyAnswer::parse(200, resource).unwrap(),
            ProxyAnswer::Resource {
                status: 200,
                headers: BTreeMap::from([("content-type".to_owned(), "text/plain".to_owned())]),
                body: b"feed".to_vec(),
            }
        );
        let binary = br#"{"status":201,"headers":{},"bodyBase64":"/wA="}"#;
        let ProxyAnswer::Resource { body, .. } = ProxyAnswer::parse(200, binary).unwrap() else {
            panic!("a resource answer")
        };
        assert_eq!(body, vec![0xff, 0]);
        let approval = br#"{"oauthApprovalUrl":"https://accounts.example/proxy/approve?app=x"}"#;
        assert_eq!(
            ProxyAnswer::parse(200, approval).unwrap(),
            ProxyAnswer::Approval {
                url: "https://accounts.example/proxy/approve?app=x".to_owned()
            }
        );
        let refused = br#"{"error":"address_not_allowed","error_description":"private"}"#;
        assert_eq!(
            ProxyAnswer::parse(403, refused).unwrap(),
            ProxyAnswer::Refused {
                http_status: 403,
                error: "address_not_allowed".to_owned(),
                description: "private".to_owned(),
            }
        );
        assert!(ProxyAnswer::parse(200, b"<html>").is_err());
        assert!(ProxyAnswer::parse(200, b"{}").is_err());
        assert!(ProxyAnswer::parse(200, br#"{"status":200,"bodyBase64":"!"}"#).is_err());
    }
}
