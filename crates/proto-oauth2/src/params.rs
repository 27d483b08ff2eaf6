//! Request parameters from a query string or a form body, parsed strictly: UTF-8 only, each
//! parameter at most once (RFC 6749 §3.1), a bounded count. A parameter sent with an empty value is
//! treated as omitted.

use crate::OAuthError;

/// The most parameters one request may carry.
pub const MAX_PARAMS: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` bytes (`+` is a space).
    pub fn parse(raw: &[u8]) -> Result<Params, OAuthError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in raw.split(|b| *b == b'&').filter(|it| !it.is_empty()) {
            if out.len() >= MAX_PARAMS {
                return Err(OAuthError::invalid_request("Too many parameters."));
            }
            let (key, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let key = form_decode(key)
                .ok_or_else(|| OAuthError::invalid_request("Parameters must be UTF-8."))?;
            let value = form_decode(value)
                .ok_or_else(|| OAuthError::invalid_request("Parameters must be UTF-8."))?;
            if out.iter().any(|(k, _)| *k == key) {
                return Err(OAuthError::invalid_request(format!(
                    "Parameter {} is repeated.",
                    key.chars().take(40).collect::<String>()
                )));
            }
            out.push((key, value));
        }
        Ok(Params(out))
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Params {
        Params(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }

    /// The value, or `None` when absent or empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    pub fn require(&self, key: &str) -> Result<&str, OAuthError> {
        self.get(key).ok_or_else(|| {
            OAuthError::invalid_request(format!("Missing required parameter: {key}"))
        })
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The parameters encoded again as a form or query string.
    pub fn encode(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(self.0.iter()).finish()
    }

    /// A copy without the named parameters.
    pub fn without(&self, keys: &[&str]) -> Params {
        Params(self.0.iter().filter(|(k, _)| !keys.contains(&k.as_str())).cloned().collect())
    }

    /// A copy with `key` set to `value`, replacing any earlier value.
    pub fn with(&self, key: &str, value: &str) -> Params {
        let mut out = self.without(&[key]);
        out.0.push((key.to_owned(), value.to_owned()));
        out
    }
}

/// Decodes one form-encoded component; `None` when it is not UTF-8.
pub fn form_decode(raw: &[u8]) -> Option<String> {
    let plus_as_space: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&plus_as_space).collect();
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn repeated_parameters_are_refused() {
        let err = Params::parse(b"client_id=a&scope=x&client_id=b").unwrap_err();
        assert_eq!(err.code, crate::ErrorCode::InvalidRequest);
        assert!(err.description.contains("client_id"));
    }

    #[test]
    fn empty_values_count_as_absent() {
        let params = Params::parse(b"state=&scope=openid+email").unwrap();
        assert_eq!(params.get("state"), None);
        assert!(params.contains("state"));
        assert_eq!(params.get("scope"), Some("openid email"));
        assert!(params.require("state").is_err());
    }

    #[test]
    fn round_trips_through_encode() {
        let params = Params::from_pairs([("a", "x y&z"), ("b", "é")]);
        assert_eq!(Params::parse(params.encode().as_bytes()).unwrap(), params);
        assert_eq!(params.with("a", "1").get("a"), Some("1"));
        assert_eq!(params.without(&["a"]).get("a"), None);
    }

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Params::parse(&raw);
        }
    }
}
