//! The Android account-manager `/auth` wire format: the lenient form the client libraries send
//! (§2.2 of the reference: percent-encoded `key=value` pairs, booleans sent as `1` only when true,
//! unknown fields ignored), the token type in `service` (§2.8), the `EncryptedPasswd` blob's shape
//! (§2.4), and the LF-terminated `Key=Value` bodies (§2.6, §2.9, §2.11) written so that the
//! strictest client parser accepts them (§2.12: no line without `=`, no empty line, split on the
//! first `=`).
//!
//! No HTTP framework, storage or cryptography here.

use base64::Engine as _;

/// Longest body field accepted; longer values are refused as a whole request.
pub const MAX_FIELD_LEN: usize = 8192;

/// Why a request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("missing service")]
    MissingService,
    #[error("a field is too long")]
    TooLong,
    #[error("malformed service")]
    BadService,
}

/// One `/auth` request, master login or per-service token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub email: Option<String>,
    /// Plain password (`Passwd`), accepted only over https or when configured.
    pub passwd: Option<String>,
    /// `EncryptedPasswd` as sent: an encrypted password blob, or (gpsoauth) a master token.
    pub encrypted_passwd: Option<String>,
    /// `Token`: a master token (or, with `ACCESS_TOKEN=1`, a web sign-in token).
    pub token: Option<String>,
    pub access_token: bool,
    pub service: String,
    pub android_id: Option<String>,
    /// The package the token is for, and the SHA-1 of its signing certificate.
    pub app: Option<String>,
    pub client_sig: Option<String>,
    pub caller_pkg: Option<String>,
    pub caller_sig: Option<String>,
    pub has_permission: bool,
    pub add_account: bool,
    pub source: Option<String>,
    pub device_country: Option<String>,
    pub operator_country: Option<String>,
    pub lang: Option<String>,
    pub sdk_version: Option<String>,
    pub include_email: bool,
    pub include_profile: bool,
    pub get_accountid: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("email", &self.email)
            .field("service", &self.service)
            .field("android_id", &self.android_id)
            .field("app", &self.app)
            .field("has_permission", &self.has_permission)
            .finish_non_exhaustive()
    }
}

fn flag(value: &str) -> bool {
    matches!(value.trim(), "1" | "true" | "TRUE" | "True")
}

fn text(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// Parses an `application/x-www-form-urlencoded` body leniently: `+` is a space, malformed
/// percent escapes are kept as they are, invalid UTF-8 is replaced, a repeated field keeps its
/// first value, and unknown fields are ignored.
pub fn parse(body: &[u8]) -> Result<Request, ParseError> {
    let mut request = Request::default();
    let mut seen: Vec<String> = Vec::new();
    let mut service = None;
    for (key, value) in form_urlencoded::parse(body) {
        if value.len() > MAX_FIELD_LEN || key.len() > MAX_FIELD_LEN {
            return Err(ParseError::TooLong);
        }
        if seen.iter().any(|it| *it == key) {
            continue;
        }
        seen.push(key.to_string());
        let value = value.as_ref();
        match key.as_ref() {
            "Email" => request.email = text(value),
            "Passwd" => request.passwd = (!value.is_empty()).then(|| value.to_owned()),
            "EncryptedPasswd" => request.encrypted_passwd = text(value),
            "Token" => request.token = text(value),
            "ACCESS_TOKEN" => request.access_token = flag(value),
            "service" => service = text(value),
            "androidId" => request.android_id = text(value).map(|it| it.to_ascii_lowercase()),
            "app" => request.app = text(value),
            "client_sig" => request.client_sig = text(value),
            "callerPkg" => request.caller_pkg = text(value),
            "callerSig" => request.caller_sig = text(value),
            "has_permission" => request.has_permission = flag(value),
            "add_account" => request.add_account = flag(value),
            "source" => request.source = text(value),
            "device_country" => request.device_country = text(value),
            "operatorCountry" => request.operator_country = text(value),
            "lang" => request.lang = text(value),
            "sdk_version" => request.sdk_version = text(value),
            "oauth2_include_email" => request.include_email = flag(value),
            "oauth2_include_profile" => request.include_profile = flag(value),
            "get_accountid" => request.get_accountid = flag(value),
            _ => {}
        }
    }
    request.service = service.ok_or(ParseError::MissingService)?;
    Ok(request)
}

/// What the `service` field asks for (§2.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// A ClientLogin service name (`ac2dm`, `mail`, `cl`, …): a `GoogleLogin auth=` token.
    ClientLogin(String),
    /// `oauth2:<scope> <scope>…`: an access token.
    OAuth2(Vec<String>),
    /// `audience:server:client_id:<id>`: an ID token for that client.
    Audience(String),
    /// `oauth2:server:client_id:<id>:api_scope:<scopes>`: a one-time code for that client.
    ServerCode { client_id: String, scopes: Vec<String> },
    /// `weblogin:<args>`: a URL that signs a browser in.
    WebLogin(String),
}

fn scope_list(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for scope in text.split([' ', '+']).filter(|it| !it.is_empty()) {
        if !out.iter().any(|it| it == scope) {
            out.push(scope.to_owned());
        }
    }
    out
}

/// Reads the `service` field.
pub fn parse_service(service: &str) -> Result<Service, ParseError> {
    let service = service.trim();
    if let Some(rest) = service.strip_prefix("oauth2:server:client_id:") {
        let (client_id, scopes) = rest.split_once(":api_scope:").ok_or(ParseError::BadService)?;
        let scopes = scope_list(scopes);
        if client_id.is_empty() || scopes.is_empty() {
            return Err(ParseError::BadService);
        }
        return Ok(Service::ServerCode { client_id: client_id.to_owned(), scopes });
    }
    if let Some(rest) = service.strip_prefix("oauth2:") {
        let scopes = scope_list(rest);
        if scopes.is_empty() {
            return Err(ParseError::BadService);
        }
        return Ok(Service::OAuth2(scopes));
    }
    if let Some(rest) = service.strip_prefix("audience:server:client_id:") {
        if rest.is_empty() || rest.contains(' ') {
            return Err(ParseError::BadService);
        }
        return Ok(Service::Audience(rest.to_owned()));
    }
    if let Some(rest) = service.strip_prefix("weblogin:") {
        return Ok(Service::WebLogin(rest.to_owned()));
    }
    let valid = !service.is_empty()
        && service.len() <= 64
        && service.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid {
        return Err(ParseError::BadService);
    }
    Ok(Service::ClientLogin(service.to_owned()))
}

/// Length of an `EncryptedPasswd` blob: `0x00 ‖ fingerprint(4) ‖ ciphertext(128)`.
pub const BLOB_LEN: usize = 133;

/// The decoded blob if `value` is an `EncryptedPasswd` blob (base64, URL-safe or standard, padded
/// or not, of 133 bytes starting with `0x00`); `None` for anything else (a master token sent in
/// that field, as gpsoauth does).
pub fn encrypted_blob(value: &str) -> Option<Vec<u8>> {
    let trimmed = value.trim().trim_end_matches('=');
    if trimmed.len() > 200 {
        return None;
    }
    let normal: String = trimmed
        .chars()
        .map(|c| match c {
            '+' | ' ' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(normal).ok()?;
    (bytes.len() == BLOB_LEN && bytes[0] == 0).then_some(bytes)
}

/// Error codes (§2.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadAuthentication,
    NeedsBrowser,
    CaptchaRequired,
    NotVerified,
    TermsNotAgreed,
    AccountDeleted,
    AccountDisabled,
    ServiceDisabled,
    ServiceUnavailable,
    Unknown,
    BadRequest,
    InvalidScope,
    InvalidAudience,
    UnregisteredOnApiConsole,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadAuthentication => "BadAuthentication",
            ErrorCode::NeedsBrowser => "NeedsBrowser",
            ErrorCode::CaptchaRequired => "CaptchaRequired",
            ErrorCode::NotVerified => "NotVerified",
            ErrorCode::TermsNotAgreed => "TermsNotAgreed",
            ErrorCode::AccountDeleted => "AccountDeleted",
            ErrorCode::AccountDisabled => "AccountDisabled",
            ErrorCode::ServiceDisabled => "ServiceDisabled",
            ErrorCode::ServiceUnavailable => "ServiceUnavailable",
            ErrorCode::Unknown => "Unknown",
            ErrorCode::BadRequest => "BadRequest",
            ErrorCode::InvalidScope => "INVALID_SCOPE",
            ErrorCode::InvalidAudience => "INVALID_AUDIENCE",
            ErrorCode::UnregisteredOnApiConsole => "UNREGISTERED_ON_API_CONSOLE",
        }
    }
}

/// What may follow `Error=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorExtras {
    pub url: Option<String>,
    pub detail: Option<String>,
    /// CAPTCHA token and image URL.
    pub captcha: Option<(String, String)>,
    pub info: Option<String>,
}

/// A value as it may appear on one line: line breaks and other control characters become
/// spaces, so no value can end its line early or start another key.
fn clean(value: &str) -> String {
    value.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// A body of `Key=Value` lines in the given order, each ending in LF. Keys are fixed names; values
/// are cleaned of line breaks.
pub fn body(lines: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (key, value) in lines {
        out.push_str(key);
        out.push('=');
        out.push_str(&clean(value));
        out.push('\n');
    }
    out
}

/// `Error=` first, then whatever extras apply.
pub fn error_body(code: ErrorCode, extras: &ErrorExtras) -> String {
    let mut lines = vec![("Error", code.as_str().to_owned())];
    if let Some(url) = &extras.url {
        lines.push(("Url", url.clone()));
    }
    if let Some(detail) = &extras.detail {
        lines.push(("ErrorDetail", detail.clone()));
    }
    if let Some((token, url)) = &extras.captcha {
        lines.push(("CaptchaToken", token.clone()));
        lines.push(("CaptchaUrl", url.clone()));
    }
    if let Some(info) = &extras.info {
        lines.push(("Info", info.clone()));
    }
    body(&lines)
}

/// Parses a response body the way the strictest client does (tests and tools): lines split on
/// LF, each on its first `=`; `None` if any non-empty line has no `=`.
pub fn parse_body(body: &str) -> Option<Vec<(String, String)>> {
    body.split('\n')
        .filter(|line| !line.is_empty())
        .map(|line| line.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

#[cfg(test)]
mod wire_tests;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn gpsoauth_master_login_parses() {
        let body = b"accountType=HOSTED_OR_GOOGLE&Email=alice%40example.com&has_permission=1&add_account=1&EncryptedPasswd=AFcb4KQ%3D%3D&service=ac2dm&source=android&androidId=3A5F0b7c9d1e2f40&device_country=us&operatorCountry=us&lang=en&sdk_version=17&google_play_services_version=240913000&client_sig=38918a453d07199354f8b19af05ec6562ced5788&callerSig=38918a453d07199354f8b19af05ec6562ced5788&droidguard_results=dummy123";
        let request = parse(body).expect("parse");
        assert_eq!(request.email.as_deref(), Some("alice@example.com"));
        assert_eq!(request.encrypted_passwd.as_deref(), Some("AFcb4KQ=="));
        assert_eq!(request.android_id.as_deref(), Some("3a5f0b7c9d1e2f40"));
        assert!(request.has_permission && request.add_account && !request.access_token);
        assert_eq!(parse_service(&request.service), Ok(Service::ClientLogin("ac2dm".into())));
        assert_eq!(parse(b"Email=a"), Err(ParseError::MissingService));
    }

    #[test]
    fn services_of_every_type() {
        assert_eq!(
            parse_service("oauth2:https://a.example/x email email"),
            Ok(Service::OAuth2(vec!["https://a.example/x".into(), "email".into()]))
        );
        assert_eq!(
            parse_service("audience:server:client_id:w-1"),
            Ok(Service::Audience("w-1".into()))
        );
        assert_eq!(
            parse_service("oauth2:server:client_id:w-1:api_scope:email profile"),
            Ok(Service::ServerCode {
                client_id: "w-1".into(),
                scopes: vec!["email".into(), "profile".into()]
            })
        );
        assert_eq!(
            parse_service("weblogin:service=mail&continue=x"),
            Ok(Service::WebLogin("service=mail&continue=x".into()))
        );
        for bad in [
            "",
            "oauth2:",
            "oauth2:server:client_id:w",
            "audience:server:client_id:",
            "a b",
            "x\ny",
        ] {
            assert_eq!(parse_service(bad), Err(ParseError::BadService), "{bad:?}");
        }
    }

    #[test]
    fn blobs_are_recognised_by_shape() {
        let mut raw = vec![0_u8; BLOB_LEN];
        raw[1] = 0xfb;
        let url = base64::engine::general_purpose::URL_SAFE.encode(&raw);
        let std = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&raw);
        assert_eq!(encrypted_blob(&url), Some(raw.clone()));
        assert_eq!(encrypted_blob(&std), Some(raw));
        assert_eq!(encrypted_blob("aas_et/AKppINb3kQmDcbXcRg9"), None);
    }

    proptest! {
        #[test]
        fn any_body_parses_or_fails_cleanly(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(request) = parse(&body) {
                let _ = parse_service(&request.service);
            }
        }

        #[test]
        fn any_service_string_is_classified_without_panic(service in ".{0,80}") {
            let _ = parse_service(&service);
            let _ = encrypted_blob(&service);
        }

        #[test]
        fn bodies_always_parse_back_line_for_line(values in proptest::collection::vec(".{0,40}", 1..6)) {
            let keys = ["Auth", "Expiry", "Url", "Email", "services", "Token"];
            let lines: Vec<(&str, String)> = keys.iter().copied().zip(values.iter().cloned()).collect();
            let text = body(&lines);
            let parsed = parse_body(&text).expect("every line has =");
            prop_assert_eq!(parsed.len(), lines.len());
            for ((key, _), (parsed_key, parsed_value)) in lines.iter().zip(&parsed) {
                prop_assert_eq!(*key, parsed_key.as_str());
                prop_assert!(!parsed_value.contains('\n') && !parsed_value.contains('\r'));
            }
        }
    }
}
