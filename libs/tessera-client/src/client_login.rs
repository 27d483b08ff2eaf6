//! ClientLogin (legacy-auth §2): trade an e-mail address and password for `SID`, `LSID` and `Auth`,
//! including the CAPTCHA challenge and retry.

use std::fmt;

use url::Url;

use crate::secret::Secret;

/// `accountType` (legacy-auth §2.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AccountType {
    /// `HOSTED_OR_GOOGLE`: try the hosted account first, then the consumer one (what every library sends).
    #[default]
    HostedOrGoogle,
    /// `GOOGLE`: consumer accounts only.
    Google,
    /// `HOSTED`: hosted (Apps) accounts only.
    Hosted,
}

impl AccountType {
    fn as_str(self) -> &'static str {
        match self {
            Self::HostedOrGoogle => "HOSTED_OR_GOOGLE",
            Self::Google => "GOOGLE",
            Self::Hosted => "HOSTED",
        }
    }
}

/// The tokens of a successful login (legacy-auth §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// `SID`: session value.
    pub sid: Secret,
    /// `LSID`: session value.
    pub lsid: Secret,
    /// `Auth`: the token for API calls on the requested service.
    pub auth: Secret,
}

impl Tokens {
    /// The `Authorization` header value for API calls: `GoogleLogin auth=<Auth>` (legacy-auth §2.6).
    pub fn authorization_header(&self) -> String {
        authorization(self.auth.expose())
    }
}

/// The `Authorization` header value that presents an `Auth` token, however it was obtained (a
/// ClientLogin answer, or an Android device login's per-service answer): `GoogleLogin auth=<Auth>`.
pub fn authorization(auth: &str) -> String {
    format!("GoogleLogin auth={auth}")
}

/// The `Url=` and `Info=` lines that come with a failure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failure {
    /// `Url=`: a help page.
    pub url: Option<String>,
    /// `Info=`, e.g. `InvalidSecondFactor`.
    pub info: Option<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(info) = &self.info {
            write!(f, " (Info={info})")?;
        }
        Ok(())
    }
}

/// The CAPTCHA a `CaptchaRequired` answer asks the user to solve (legacy-auth §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptchaChallenge {
    /// `CaptchaToken=`: send back as `logintoken`.
    pub token: String,
    /// `CaptchaUrl=` resolved against `{base}/accounts/`: the image to show.
    pub url: Url,
    /// `Url=` and `Info=`.
    pub failure: Failure,
}

/// Why a login failed: one variant per `Error=` code (legacy-auth §2.4), plus transport problems.
#[derive(Debug, thiserror::Error)]
pub enum ClientLoginError {
    /// `BadAuthentication`: wrong e-mail or password; `Info=InvalidSecondFactor` asks for an application-specific password.
    #[error("BadAuthentication{0}")]
    BadAuthentication(Failure),
    /// `NotVerified`: the e-mail address is not verified.
    #[error("NotVerified{0}")]
    NotVerified(Failure),
    /// `TermsNotAgreed`: the user has not accepted the terms.
    #[error("TermsNotAgreed{0}")]
    TermsNotAgreed(Failure),
    /// `CaptchaRequired`: show the image at the challenge's `url`, then call
    /// [`ClientLogin::login_with_captcha`] with its `token` and the user's answer.
    #[error("CaptchaRequired")]
    CaptchaRequired(Box<CaptchaChallenge>),
    /// `Unknown`: invalid or malformed input.
    #[error("Unknown{0}")]
    Unknown(Failure),
    /// `AccountDeleted`.
    #[error("AccountDeleted{0}")]
    AccountDeleted(Failure),
    /// `AccountDisabled`.
    #[error("AccountDisabled{0}")]
    AccountDisabled(Failure),
    /// `ServiceDisabled`: this account may not use the requested service.
    #[error("ServiceDisabled{0}")]
    ServiceDisabled(Failure),
    /// `ServiceUnavailable`: try again later.
    #[error("ServiceUnavailable{0}")]
    ServiceUnavailable(Failure),
    /// `AccountMigrated`.
    #[error("AccountMigrated{0}")]
    AccountMigrated(Failure),
    /// Any other `Error=` code, verbatim.
    #[error("{code}{failure}")]
    Other {
        /// The `Error=` value.
        code: String,
        /// `Url=` and `Info=`.
        failure: Failure,
    },
    /// The response did not follow the wire format.
    #[error("malformed ClientLogin response: {0}")]
    Malformed(&'static str),
    /// A status other than 200 or 403.
    #[error("unexpected HTTP {status} from ClientLogin")]
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
    },
    /// The request failed.
    #[error("ClientLogin request failed")]
    Http(#[from] reqwest::Error),
}

impl ClientLoginError {
    /// Whether the account needs an application-specific password (`Info=InvalidSecondFactor`).
    pub fn is_second_factor_required(&self) -> bool {
        matches!(self, Self::BadAuthentication(failure) if failure.info.as_deref() == Some("InvalidSecondFactor"))
    }
}

/// A ClientLogin client for one server.
#[derive(Debug, Clone)]
pub struct ClientLogin {
    http: reqwest::Client,
    base: Url,
    account_type: AccountType,
    deprecation: crate::deprecation::LastNotice,
}

impl ClientLogin {
    /// A client for the server at `base` (e.g. `https://accounts.example.test/`); the endpoint is `{base}accounts/ClientLogin`.
    pub fn new(base: Url) -> Self {
        Self {
            http: crate::default_http_client(),
            base: directory(base),
            account_type: AccountType::default(),
            deprecation: Default::default(),
        }
    }

    /// The last retirement notice an answer carried (it is also logged when it arrives): see
    /// [`crate::deprecation`].
    pub fn last_deprecation(&self) -> Option<crate::deprecation::Deprecation> {
        self.deprecation.get()
    }

    /// Uses `http` for requests.
    #[must_use]
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// Sends `accountType` (default `HOSTED_OR_GOOGLE`).
    #[must_use]
    pub fn with_account_type(mut self, account_type: AccountType) -> Self {
        self.account_type = account_type;
        self
    }

    /// Logs in for `service` (e.g. `cl`), identifying the application as `source` (`company-app-version`).
    pub async fn login(
        &self,
        email: &str,
        password: &Secret,
        service: &str,
        source: &str,
    ) -> Result<Tokens, ClientLoginError> {
        self.post(email, password, service, source, None).await
    }

    /// Repeats a login that answered [`ClientLoginError::CaptchaRequired`], with its `captcha_token` and the user's `answer`.
    pub async fn login_with_captcha(
        &self,
        email: &str,
        password: &Secret,
        service: &str,
        source: &str,
        captcha_token: &str,
        answer: &str,
    ) -> Result<Tokens, ClientLoginError> {
        self.post(email, password, service, source, Some((captcha_token, answer))).await
    }

    async fn post(
        &self,
        email: &str,
        password: &Secret,
        service: &str,
        source: &str,
        captcha: Option<(&str, &str)>,
    ) -> Result<Tokens, ClientLoginError> {
        let url = self
            .base
            .join("accounts/ClientLogin")
            .map_err(|_| ClientLoginError::Malformed("base URL"))?;
        let mut form = vec![
            ("accountType", self.account_type.as_str()),
            ("Email", email),
            ("Passwd", password.expose()),
            ("service", service),
            ("source", source),
        ];
        if let Some((token, answer)) = captcha {
            form.push(("logintoken", token));
            form.push(("logincaptcha", answer));
        }
        let res = self.http.post(url.clone()).form(&form).send().await?;
        self.deprecation.observe(&url, res.headers());
        let status = res.status().as_u16();
        let body = res.text().await?;
        parse_response(status, &body, &self.base)
    }
}

/// `url` with a path ending in `/`, so that relative joins stay below it.
fn directory(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// `Key=value` lines, split at the first `=`; lines without `=` are skipped.
pub(crate) fn key_values(body: &str) -> impl Iterator<Item = (&str, &str)> {
    body.lines().filter_map(|line| line.trim_end_matches('\r').split_once('='))
}

/// Interprets a ClientLogin response; `base` is the server base that `CaptchaUrl` is relative to (`{base}accounts/`).
pub fn parse_response(status: u16, body: &str, base: &Url) -> Result<Tokens, ClientLoginError> {
    let find = |key: &str| {
        key_values(body).find(|(name, _)| *name == key).map(|(_, value)| value.to_owned())
    };
    match status {
        200 => {
            let (Some(sid), Some(lsid), Some(auth)) = (find("SID"), find("LSID"), find("Auth"))
            else {
                return Err(ClientLoginError::Malformed("missing SID, LSID or Auth"));
            };
            Ok(Tokens { sid: Secret::new(sid), lsid: Secret::new(lsid), auth: Secret::new(auth) })
        }
        403 => {
            let code = find("Error").ok_or(ClientLoginError::Malformed("403 without Error="))?;
            let failure = Failure { url: find("Url"), info: find("Info") };
            Err(match code.as_str() {
                "BadAuthentication" => ClientLoginError::BadAuthentication(failure),
                "NotVerified" => ClientLoginError::NotVerified(failure),
                "TermsNotAgreed" => ClientLoginError::TermsNotAgreed(failure),
                "CaptchaRequired" => {
                    let token = find("CaptchaToken").ok_or(ClientLoginError::Malformed(
                        "CaptchaRequired without CaptchaToken",
                    ))?;
                    let relative = find("CaptchaUrl")
                        .ok_or(ClientLoginError::Malformed("CaptchaRequired without CaptchaUrl"))?;
                    let url = directory(base.clone())
                        .join("accounts/")
                        .and_then(|accounts| accounts.join(&relative))
                        .map_err(|_| ClientLoginError::Malformed("CaptchaUrl is not a URL"))?;
                    ClientLoginError::CaptchaRequired(Box::new(CaptchaChallenge {
                        token,
                        url,
                        failure,
                    }))
                }
                "Unknown" => ClientLoginError::Unknown(failure),
                "AccountDeleted" => ClientLoginError::AccountDeleted(failure),
                "AccountDisabled" => ClientLoginError::AccountDisabled(failure),
                "ServiceDisabled" => ClientLoginError::ServiceDisabled(failure),
                "ServiceUnavailable" => ClientLoginError::ServiceUnavailable(failure),
                "AccountMigrated" => ClientLoginError::AccountMigrated(failure),
                _ => ClientLoginError::Other { code, failure },
            })
        }
        status => Err(ClientLoginError::UnexpectedStatus { status }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://accounts.example.test").unwrap()
    }

    #[test]
    fn success_yields_all_three_tokens() {
        let body = "SID=DQAAAGgAExampleSid0001\nLSID=DQAAAGsAExampleLsid0001\nAuth=DQAAAGgAExampleAuth0001_-xyz\n";
        let tokens = parse_response(200, body, &base()).unwrap();
        assert_eq!(tokens.sid.expose(), "DQAAAGgAExampleSid0001");
        assert_eq!(tokens.lsid.expose(), "DQAAAGsAExampleLsid0001");
        assert_eq!(tokens.auth.expose(), "DQAAAGgAExampleAuth0001_-xyz");
        assert_eq!(tokens.authorization_header(), "GoogleLogin auth=DQAAAGgAExampleAuth0001_-xyz");
    }

    #[test]
    fn success_without_auth_is_malformed() {
        let err = parse_response(200, "SID=a\nLSID=b\n", &base()).unwrap_err();
        assert!(matches!(err, ClientLoginError::Malformed(_)), "{err:?}");
    }

    #[test]
    fn bad_authentication_keeps_info() {
        let err =
            parse_response(403, "Error=BadAuthentication\nInfo=InvalidSecondFactor\n", &base())
                .unwrap_err();
        assert!(err.is_second_factor_required());
        match err {
            ClientLoginError::BadAuthentication(failure) => {
                assert_eq!(
                    failure,
                    Failure { url: None, info: Some("InvalidSecondFactor".into()) }
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn captcha_url_is_made_absolute_under_accounts() {
        let body = "Error=CaptchaRequired\nUrl=https://accounts.example.test/accounts/DisplayUnlockCaptcha\nCaptchaToken=DQAAAGgAExampleCaptcha01\nCaptchaUrl=Captcha?ctoken=HiteExampleCtoken0001\n";
        match parse_response(403, body, &base()).unwrap_err() {
            ClientLoginError::CaptchaRequired(challenge) => {
                let CaptchaChallenge { token, url, failure } = *challenge;
                assert_eq!(token, "DQAAAGgAExampleCaptcha01");
                assert_eq!(
                    url.as_str(),
                    "https://accounts.example.test/accounts/Captcha?ctoken=HiteExampleCtoken0001"
                );
                assert_eq!(
                    failure.url.as_deref(),
                    Some("https://accounts.example.test/accounts/DisplayUnlockCaptcha")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        // A base with a path prefix keeps it.
        let prefixed = Url::parse("https://example.test/idp").unwrap();
        match parse_response(
            403,
            "Error=CaptchaRequired\nCaptchaToken=t\nCaptchaUrl=Captcha?ctoken=c\n",
            &prefixed,
        )
        .unwrap_err()
        {
            ClientLoginError::CaptchaRequired(challenge) => {
                assert_eq!(
                    challenge.url.as_str(),
                    "https://example.test/idp/accounts/Captcha?ctoken=c"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn captcha_without_token_is_malformed() {
        let err =
            parse_response(403, "Error=CaptchaRequired\nCaptchaUrl=Captcha?ctoken=c\n", &base())
                .unwrap_err();
        assert!(matches!(err, ClientLoginError::Malformed(_)), "{err:?}");
    }

    #[test]
    fn every_error_code_has_its_variant() {
        let check = |code: &str| {
            parse_response(403, &format!("Error={code}\nUrl=https://h/help\n"), &base())
                .unwrap_err()
        };
        assert!(
            matches!(check("NotVerified"), ClientLoginError::NotVerified(f) if f.url.as_deref() == Some("https://h/help"))
        );
        assert!(matches!(check("TermsNotAgreed"), ClientLoginError::TermsNotAgreed(_)));
        assert!(matches!(check("Unknown"), ClientLoginError::Unknown(_)));
        assert!(matches!(check("AccountDeleted"), ClientLoginError::AccountDeleted(_)));
        assert!(matches!(check("AccountDisabled"), ClientLoginError::AccountDisabled(_)));
        assert!(matches!(check("ServiceDisabled"), ClientLoginError::ServiceDisabled(_)));
        assert!(matches!(check("ServiceUnavailable"), ClientLoginError::ServiceUnavailable(_)));
        assert!(matches!(check("AccountMigrated"), ClientLoginError::AccountMigrated(_)));
        assert!(matches!(check("Weird"), ClientLoginError::Other { code, .. } if code == "Weird"));
        assert!(matches!(
            parse_response(403, "Url=x\n", &base()),
            Err(ClientLoginError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(500, "", &base()),
            Err(ClientLoginError::UnexpectedStatus { status: 500 })
        ));
    }

    #[test]
    fn crlf_lines_are_tolerated() {
        let tokens = parse_response(200, "SID=a\r\nLSID=b\r\nAuth=c\r\n", &base()).unwrap();
        assert_eq!(tokens.auth.expose(), "c");
    }
}
