//! The only code in the web layer that reads the `Authorization` header. Its value goes to the one
//! parser, `tessera_domain::caller::parse_authorization`; handlers get what it yields.

use http::{HeaderMap, header};
use tessera_domain::caller::{self, Presented};
use tessera_proto_oauth2::OAuthError;
use tessera_proto_oauth2::client_auth::BasicCredentials;

/// The header's value, when there is one in UTF-8.
pub(crate) fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|it| it.to_str().ok())
}

/// The presented credential, if the header holds one the parser accepts.
pub(crate) fn presented(headers: &HeaderMap) -> Option<Presented> {
    caller::parse_authorization(authorization(headers)?).ok()
}

/// `Basic` client credentials (RFC 6749 §2.3.1), still form-encoded; `Err` when the header says
/// `Basic` but is malformed; `None` when it says something else or nothing.
pub(crate) fn client_basic(headers: &HeaderMap) -> Result<Option<BasicCredentials>, OAuthError> {
    let Some(value) = authorization(headers) else { return Ok(None) };
    match caller::parse_basic(value) {
        Ok(Some((user, password))) => Ok(Some(BasicCredentials { user, password })),
        Ok(None) => Ok(None),
        Err(_) => Err(tessera_proto_oauth2::client_auth::malformed_basic()),
    }
}

/// The `DPoP` header's proof (RFC 9449 §4.1): `Ok(None)` without one, `Err` when there are several
/// or it is not text.
pub(crate) fn dpop_proof(headers: &HeaderMap) -> Result<Option<String>, ()> {
    let mut values = headers.get_all("dpop").iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => value.to_str().map(|it| Some(it.to_owned())).map_err(|_| ()),
        (Some(_), Some(_)) => Err(()),
    }
}
