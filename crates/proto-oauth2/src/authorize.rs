//! The authorization endpoint's request (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1, Google's
//! `access_type`, `approval_prompt`, `include_granted_scopes`, `hd`, `authuser`).
//!
//! Parsing has two stages. [`target`] finds `client_id` and `redirect_uri`: until the domain has
//! checked those against the registration, errors are shown on a page, never redirected.
//! [`parse`] then reads everything else; its errors go back to the redirect URI.

use crate::pkce::{self, Method};
use crate::response::ResponseMode;
use crate::{ErrorCode, OAuthError, Params, split_scopes};

/// Every parameter the endpoint understands; others are ignored as RFC 6749 §3.1 asks.
pub const PARAMETERS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "access_type",
    "approval_prompt",
    "prompt",
    "login_hint",
    "hd",
    "include_granted_scopes",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "authuser",
    "max_age",
    "ui_locales",
];

/// Who the answer goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub client_id: String,
    /// Optional on the wire when the client registered exactly one URI.
    pub redirect_uri: Option<String>,
}

pub fn target(params: &Params) -> Result<Target, OAuthError> {
    let client_id = params.require("client_id")?;
    if client_id.len() > 200 {
        return Err(OAuthError::new(ErrorCode::InvalidClient, "The client_id is not valid."));
    }
    Ok(Target {
        client_id: client_id.to_owned(),
        redirect_uri: params.get("redirect_uri").map(str::to_owned),
    })
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseType {
    pub code: bool,
    pub token: bool,
    pub id_token: bool,
}

impl ResponseType {
    pub fn parse(value: &str) -> Result<ResponseType, OAuthError> {
        let mut out = ResponseType::default();
        for part in value.split(' ').filter(|it| !it.is_empty()) {
            let slot = match part {
                "code" => &mut out.code,
                "token" => &mut out.token,
                "id_token" => &mut out.id_token,
                _ => {
                    return Err(OAuthError::new(
                        ErrorCode::UnsupportedResponseType,
                        "Unsupported response_type.",
                    ));
                }
            };
            if *slot {
                return Err(OAuthError::invalid_request("A response_type value is repeated."));
            }
            *slot = true;
        }
        if out == ResponseType::default() {
            return Err(OAuthError::invalid_request("Missing required parameter: response_type"));
        }
        Ok(out)
    }

    /// Whether tokens travel in the front channel (implicit or hybrid).
    pub fn is_implicit(self) -> bool {
        self.token || self.id_token
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub consent: bool,
    pub select_account: bool,
    pub login: bool,
}

impl Prompt {
    pub fn parse(value: Option<&str>) -> Result<Prompt, OAuthError> {
        let mut out = Prompt::default();
        for part in value.unwrap_or_default().split(' ').filter(|it| !it.is_empty()) {
            match part {
                "none" => out.none = true,
                "consent" => out.consent = true,
                "select_account" => out.select_account = true,
                "login" => out.login = true,
                _ => return Err(OAuthError::invalid_request("Unsupported prompt value.")),
            }
        }
        if out.none && (out.consent || out.select_account || out.login) {
            return Err(OAuthError::invalid_request("prompt=none cannot be combined."));
        }
        Ok(out)
    }
}

/// A PKCE challenge as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub challenge: String,
    pub method: Method,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub target: Target,
    pub response_type: ResponseType,
    pub response_mode: ResponseMode,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub offline: bool,
    pub prompt: Prompt,
    pub login_hint: Option<String>,
    pub hd: Option<String>,
    pub include_granted_scopes: bool,
    pub challenge: Option<Challenge>,
    pub authuser: Option<String>,
    /// OIDC `max_age`: the sign-in may be at most this many seconds old.
    pub max_age: Option<i64>,
    /// OIDC `ui_locales`: the languages the person's pages should be in, preferred first.
    pub ui_locales: Option<String>,
}

pub fn parse(params: &Params) -> Result<AuthorizeRequest, OAuthError> {
    let target = target(params)?;
    let response_type = ResponseType::parse(params.require("response_type")?)?;
    let response_mode = match params.get("response_mode") {
        None if response_type.is_implicit() => ResponseMode::Fragment,
        None => ResponseMode::Query,
        Some(value) => ResponseMode::parse(value)
            .ok_or_else(|| OAuthError::invalid_request("Unsupported response_mode."))?,
    };
    if response_type.is_implicit() && response_mode == ResponseMode::Query {
        return Err(OAuthError::invalid_request("Tokens are never sent in the query."));
    }
    let scopes = split_scopes(params.require("scope")?);
    let offline = match params.get("access_type") {
        None | Some("online") => false,
        Some("offline") => true,
        Some(_) => return Err(OAuthError::invalid_request("access_type is online or offline.")),
    };
    let mut prompt = Prompt::parse(params.get("prompt"))?;
    match params.get("approval_prompt") {
        None | Some("auto") => {}
        Some("force") => prompt.consent = true,
        Some(_) => return Err(OAuthError::invalid_request("approval_prompt is auto or force.")),
    }
    if prompt.none && prompt.consent {
        return Err(OAuthError::invalid_request("prompt=none cannot be combined."));
    }
    let include_granted_scopes = match params.get("include_granted_scopes") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(OAuthError::invalid_request("include_granted_scopes is true or false."));
        }
    };
    let challenge = match params.get("code_challenge") {
        None if params.get("code_challenge_method").is_some() => {
            return Err(OAuthError::invalid_request("code_challenge_method without a challenge."));
        }
        None => None,
        Some(challenge) => {
            if !pkce::well_formed(challenge) {
                return Err(OAuthError::invalid_request("Malformed code_challenge."));
            }
            let method = Method::parse(params.get("code_challenge_method"))?;
            Some(Challenge { challenge: challenge.to_owned(), method })
        }
    };
    let short = |key: &str, max: usize| -> Result<Option<String>, OAuthError> {
        match params.get(key) {
            Some(value) if value.len() > max => {
                Err(OAuthError::invalid_request(format!("{key} is too long.")))
            }
            other => Ok(other.map(str::to_owned)),
        }
    };
    let max_age = match params.get("max_age") {
        None => None,
        Some(value) => Some(
            value
                .parse::<u32>()
                .map(i64::from)
                .map_err(|_| OAuthError::invalid_request("max_age is a number of seconds."))?,
        ),
    };
    let nonce = short("nonce", 500)?;
    if response_type.id_token && nonce.is_none() {
        return Err(OAuthError::invalid_request("A nonce is required with id_token."));
    }
    Ok(AuthorizeRequest {
        target,
        response_type,
        response_mode,
        scopes,
        state: short("state", 2000)?,
        nonce,
        offline,
        prompt,
        login_hint: short("login_hint", 320)?,
        hd: short("hd", 253)?,
        include_granted_scopes,
        challenge,
        authuser: short("authuser", 10)?,
        max_age,
        ui_locales: short("ui_locales", 200)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Params {
        Params::parse(query.as_bytes()).unwrap()
    }

    #[test]
    fn parses_a_google_style_request() {
        let req = parse(&params(
            "response_type=code&client_id=c1&redirect_uri=https%3A%2F%2Fa%2Fcb&scope=openid+email\
             &state=xyz&access_type=offline&approval_prompt=force&include_granted_scopes=true\
             &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        ))
        .unwrap();
        assert_eq!(req.target.client_id, "c1");
        assert_eq!(req.target.redirect_uri.as_deref(), Some("https://a/cb"));
        assert_eq!(req.scopes, ["openid", "email"]);
        assert!(req.offline && req.prompt.consent && req.include_granted_scopes);
        assert_eq!(req.response_mode, ResponseMode::Query);
        assert_eq!(req.challenge.unwrap().method, Method::S256);
    }

    #[test]
    fn refuses_bad_values() {
        let base = "client_id=c1&scope=openid";
        let code = |extra: &str| parse(&params(&format!("{base}&{extra}"))).unwrap_err().code;
        assert_eq!(code("response_type=magic"), ErrorCode::UnsupportedResponseType);
        assert_eq!(code("response_type=code&access_type=forever"), ErrorCode::InvalidRequest);
        assert_eq!(code("response_type=code&prompt=none+consent"), ErrorCode::InvalidRequest);
        assert_eq!(code("response_type=code&code_challenge=short"), ErrorCode::InvalidRequest);
        assert_eq!(code("response_type=token&response_mode=query"), ErrorCode::InvalidRequest);
        assert_eq!(code("response_type=id_token"), ErrorCode::InvalidRequest);
        assert_eq!(code("response_type=code&max_age=-1"), ErrorCode::InvalidRequest);
        assert_eq!(code("response_type=code&max_age=soon"), ErrorCode::InvalidRequest);
        assert_eq!(
            parse(&params("client_id=c1&response_type=code")).unwrap_err().description,
            "Missing required parameter: scope"
        );
        assert!(target(&params("scope=openid")).is_err());
    }

    #[test]
    fn implicit_defaults_to_fragment() {
        let req = parse(&params("client_id=c&scope=openid&response_type=token")).unwrap();
        assert_eq!(req.response_mode, ResponseMode::Fragment);
    }
}
