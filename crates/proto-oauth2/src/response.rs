//! Encoding an authorization response (or error) for the redirect URI: in the query, in the
//! fragment, or as a self-submitting form (OAuth 2.0 Form Post Response Mode).

use url::form_urlencoded::Serializer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

impl ResponseMode {
    pub fn parse(value: &str) -> Option<ResponseMode> {
        match value {
            "query" => Some(ResponseMode::Query),
            "fragment" => Some(ResponseMode::Fragment),
            "form_post" => Some(ResponseMode::FormPost),
            _ => None,
        }
    }
}

/// `redirect_uri` with the response parameters added in the query or the fragment. A URI that
/// already has a query keeps it (RFC 6749 §3.1.2).
pub fn redirect_url(redirect_uri: &str, mode: ResponseMode, params: &[(&str, String)]) -> String {
    let encoded =
        Serializer::new(String::new()).extend_pairs(params.iter().map(|(k, v)| (*k, v))).finish();
    match mode {
        ResponseMode::Fragment => format!("{redirect_uri}#{encoded}"),
        ResponseMode::Query | ResponseMode::FormPost => {
            let sep = if redirect_uri.contains('?') { '&' } else { '?' };
            format!("{redirect_uri}{sep}{encoded}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_fragment() {
        let params = [("code", "4/a b".to_owned()), ("state", "s&t".to_owned())];
        assert_eq!(
            redirect_url("https://a/cb", ResponseMode::Query, &params),
            "https://a/cb?code=4%2Fa+b&state=s%26t"
        );
        assert_eq!(
            redirect_url("https://a/cb?x=1", ResponseMode::Query, &params),
            "https://a/cb?x=1&code=4%2Fa+b&state=s%26t"
        );
        assert_eq!(
            redirect_url("https://a/cb", ResponseMode::Fragment, &params[..1]),
            "https://a/cb#code=4%2Fa+b"
        );
    }
}
