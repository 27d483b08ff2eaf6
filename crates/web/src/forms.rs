//! Strict form parsing for POSTed pages: UTF-8 only, each field at most once, bounded sizes.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use http::header;

use crate::error::PageError;

/// The fields of an `application/x-www-form-urlencoded` body (or of a query string).
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields(Vec<(String, String)>);

/// Why a form was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FormError {
    NotUtf8,
    Duplicate(String),
    TooMany,
}

impl Fields {
    pub(crate) fn parse(raw: &[u8]) -> Result<Fields, FormError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in raw.split(|b| *b == b'&').filter(|it| !it.is_empty()) {
            if out.len() >= 64 {
                return Err(FormError::TooMany);
            }
            let (key, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let key = decode(key)?;
            let value = decode(value)?;
            if out.iter().any(|(k, _)| *k == key) {
                return Err(FormError::Duplicate(key));
            }
            out.push((key, value));
        }
        Ok(Fields(out))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The first of several accepted names that is present.
    pub(crate) fn get_any(&self, keys: &[&str]) -> Option<&str> {
        keys.iter().find_map(|key| self.get(key))
    }

    pub(crate) fn text(&self, key: &str) -> String {
        self.get(key).unwrap_or_default().to_owned()
    }
}

fn decode(raw: &[u8]) -> Result<String, FormError> {
    let plus_as_space: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&plus_as_space).collect();
    String::from_utf8(bytes).map_err(|_| FormError::NotUtf8)
}

/// Extracts a POSTed urlencoded form.
pub(crate) struct Form(pub(crate) Fields);

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Form, PageError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|it| it.to_str().ok())
            .unwrap_or_default();
        let mime = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if mime != "application/x-www-form-urlencoded" {
            return Err(PageError::bad_request("This page expects a form submission."));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| PageError::bad_request("The form is too large."))?;
        match Fields::parse(&body) {
            Ok(fields) => Ok(Form(fields)),
            Err(FormError::NotUtf8) => {
                Err(PageError::bad_request("The form contains text that is not valid UTF-8."))
            }
            Err(FormError::Duplicate(_)) => {
                Err(PageError::bad_request("The form repeats a field."))
            }
            Err(FormError::TooMany) => Err(PageError::bad_request("The form has too many fields.")),
        }
    }
}

/// The query string's fields, parsed the same strict way.
pub(crate) fn query(uri: &http::Uri) -> Result<Fields, PageError> {
    query_fields(uri.query().unwrap_or_default())
}

/// A raw query's fields, parsed the same strict way.
pub(crate) fn query_fields(raw: &str) -> Result<Fields, PageError> {
    Fields::parse(raw.as_bytes())
        .map_err(|_| PageError::bad_request("The address has a malformed query."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_refuses() {
        let fields = Fields::parse(b"a=1&b=x+y%2Bz&c").unwrap();
        assert_eq!(fields.get("a"), Some("1"));
        assert_eq!(fields.get("b"), Some("x y+z"));
        assert_eq!(fields.get("c"), Some(""));
        assert_eq!(Fields::parse(b"a=1&a=2").unwrap_err(), FormError::Duplicate("a".to_owned()));
        assert_eq!(Fields::parse(b"a=%ff").unwrap_err(), FormError::NotUtf8);
    }

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Fields::parse(&raw);
        }

        #[test]
        fn round_trips(pairs in proptest::collection::btree_map("[a-z]{1,5}", "\\PC{0,12}", 0..6)) {
            let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs.iter()).finish();
            let fields = Fields::parse(encoded.as_bytes()).unwrap();
            for (k, v) in &pairs {
                prop_assert_eq!(fields.get(k), Some(v.as_str()));
            }
        }
    }
}
