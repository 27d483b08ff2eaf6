//! Browser sign-in: `ServiceLogin` (form, account chooser), `ServiceLoginAuth` (password), the 2-step
//! code page, `Logout`, `ListAccounts` and the CAPTCHA image. Served under `/accounts` and at the root.

use askama::Template;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tessera_domain::signin::{self, Attempt, Failure, Outcome, SecondFactorOutcome};
use tessera_store::{AccountRecord, SessionRecord};

use super::{Client, check_csrf, csrf_for_page, redirect, safe_continue, signed_in, with_cookies};
use crate::error::PageError;
use crate::forms::{self, Form};
use crate::pages::lang::{Lang, Text, fill};
use crate::{AppState, cookies, render};

pub(crate) fn router() -> Router<AppState> {
    let mut router =
        Router::new().route("/signin", get(service_login_get).post(service_login_auth_post));
    for prefix in ["/accounts", ""] {
        router = router
            .route(
                &format!("{prefix}/ServiceLogin"),
                get(service_login_get).post(service_login_auth_post),
            )
            .route(&format!("{prefix}/AddSession"), get(add_session_get))
            .route(&format!("{prefix}/CheckCookie"), get(service_login_get))
            .route(
                &format!("{prefix}/ServiceLoginAuth"),
                axum::routing::post(service_login_auth_post),
            )
            .route(
                &format!("{prefix}/SecondFactor"),
                get(second_factor_get).post(second_factor_post),
            )
            .route(&format!("{prefix}/Logout"), get(logout_get))
            .route(&format!("{prefix}/ListAccounts"), get(list_accounts).post(list_accounts))
            .route(&format!("{prefix}/Captcha"), get(captcha_get));
    }
    router
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage<'a> {
    lang: Lang,
    t: &'static Text,
    brand: &'a str,
    csrf: String,
    continue_url: String,
    email: String,
    error: Option<String>,
    captcha_token: Option<String>,
    persistent: bool,
}

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondFactorPage<'a> {
    lang: Lang,
    t: &'static Text,
    brand: &'a str,
    csrf: String,
    continue_url: String,
    /// The introduction, naming the account.
    intro: String,
    error: Option<String>,
    /// The sign-in page in the same language.
    start_over: String,
}

struct ChooserEntry {
    name: String,
    email: String,
    href: String,
}

#[derive(Template)]
#[template(path = "chooser.html")]
struct ChooserPage<'a> {
    lang: &'static str,
    t: &'static Text,
    brand: &'a str,
    accounts: Vec<ChooserEntry>,
    add_href: String,
}

/// What the sign-in form shows besides its fields.
#[derive(Default)]
struct FormView {
    continue_url: String,
    email: String,
    error: Option<String>,
    with_captcha: bool,
    persistent: bool,
    /// The page's language: `hl`, as the interaction flow sends it along.
    lang: Lang,
}

async fn signin_form(
    state: &AppState,
    headers: &HeaderMap,
    view: FormView,
    status: StatusCode,
) -> Result<Response, PageError> {
    let (csrf, set_cookie) = csrf_for_page(state, headers);
    let captcha_token = match view.with_captcha {
        true => Some(tessera_domain::captcha::issue(&state.ctx).await?.token),
        false => None,
    };
    let with_captcha = captcha_token.is_some();
    let page = SignInPage {
        lang: view.lang,
        t: view.lang.text(),
        brand: &state.brand,
        csrf,
        continue_url: view.continue_url,
        email: view.email,
        error: view.error,
        captcha_token,
        persistent: view.persistent,
    };
    let mut res = render::page(status, &page);
    if with_captcha {
        res.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CAPTCHA_PAGE_CSP));
    }
    Ok(with_cookies(res, set_cookie))
}

/// `continue` with `authuser=N` added when it points at this server (other hosts get it unchanged).
fn continue_for(state: &AppState, continue_url: &str, index: usize) -> String {
    let own = continue_url.starts_with(&format!("{}/", state.ctx.public_url));
    match own {
        true => match url::Url::parse(continue_url) {
            Ok(mut url) => {
                let kept: Vec<(String, String)> = url
                    .query_pairs()
                    .filter(|(k, _)| k != "authuser")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                url.query_pairs_mut()
                    .clear()
                    .extend_pairs(kept)
                    .append_pair("authuser", &index.to_string());
                url.to_string()
            }
            Err(_) => continue_url.to_owned(),
        },
        false => continue_url.to_owned(),
    }
}

async fn service_login_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let query = forms::query(&uri)?;
    let accounts = signed_in(&state, &headers).await?;
    let adding = query.get("add").is_some();
    let lang = Lang::pick(query.get("hl"));
    // Web sign-on: `service` names a service with web sign-on; a `continue` outside its prefixes
    // is refused, never followed.
    let target = match query.get("service") {
        Some(service) => {
            let continue_input = query.get("continue").unwrap_or_default();
            match tessera_domain::sso::target(&state.ctx, service, continue_input).await? {
                Ok(target) => Some(target),
                Err(tessera_domain::sso::Refusal::BadContinue) => {
                    return Err(PageError::bad_request(
                        "This sign-in link does not lead back to the service it names.",
                    ));
                }
                Err(_) => None,
            }
        }
        None => None,
    };
    // `passive` (and `CheckCookie`, always passive): never a page; signed in (recently enough) goes
    // on as signed in, anything else goes back to `continue` without a sign-in.
    let passive = match uri.path().ends_with("/CheckCookie") {
        true => Some(tessera_domain::sso::Passive::Any),
        false => query.get("passive").and_then(tessera_domain::sso::Passive::parse),
    };
    if let Some(passive) = passive {
        return passive_answer(&state, &accounts, target.as_ref(), &query, passive).await;
    }
    if let (Some(target), false) = (&target, adding)
        && let Some(res) =
            super::sso::service_hop(&state, &accounts, target, query.get("authuser")).await?
    {
        return Ok(res);
    }
    let continue_url = match &target {
        Some(target) => super::sso::service_login_url(&state, target, None),
        None => safe_continue(&state, query.get("continue")),
    };
    if !accounts.is_empty() && !adding {
        let entries = accounts
            .iter()
            .enumerate()
            .map(|(index, it)| ChooserEntry {
                name: it.account.name.clone(),
                email: it.account.email.clone(),
                href: match &target {
                    Some(target) => super::sso::service_login_url(&state, target, Some(index)),
                    None => continue_for(&state, &continue_url, index),
                },
            })
            .collect();
        let hl = hl_param(lang);
        let add_href = format!(
            "/accounts/ServiceLogin?add=1&{hl}continue={}",
            percent_encoding::utf8_percent_encode(
                &continue_url,
                percent_encoding::NON_ALPHANUMERIC
            )
        );
        return Ok(render::page(
            StatusCode::OK,
            &ChooserPage {
                lang: lang.code(),
                t: lang.text(),
                brand: &state.brand,
                accounts: entries,
                add_href,
            },
        ));
    }
    let email = query.get("Email").unwrap_or_default().chars().take(254).collect();
    let view = FormView { continue_url, email, lang, ..FormView::default() };
    signin_form(&state, &headers, view, StatusCode::OK).await
}

/// The answer of a passive `ServiceLogin` or of `CheckCookie`: with a web sign-on service, the
/// account named by `authuser` (default the first) goes to the service with an `auth=` token when
/// its sign-in is recent enough for `passive`, else the browser goes to `continue` without one;
/// without a service, the browser goes to `continue` (this server's pages, a configured prefix or a
/// registered web prefix) either way.
async fn passive_answer(
    state: &AppState,
    accounts: &[tessera_domain::sessions::SignedIn],
    target: Option<&tessera_domain::sso::Target>,
    query: &forms::Fields,
    passive: tessera_domain::sso::Passive,
) -> Result<Response, PageError> {
    let chosen = super::pick(accounts, query.get("authuser"))
        .filter(|(_, it)| passive.allows(&state.ctx, &it.session));
    let location = match (target, chosen) {
        (Some(target), Some((_, it))) => {
            tessera_domain::sso::issue_service_auth(&state.ctx, &it, target).await?
        }
        (Some(target), None) => target.continue_url.clone(),
        (None, chosen) => {
            let prefixes =
                tessera_domain::sso::continue_prefixes(&state.ctx, &state.continue_prefixes)
                    .await?;
            let valid = query.get("continue").and_then(|it| {
                tessera_domain::redirect::validate_continue(&state.ctx.public_url, &prefixes, it)
            });
            let location = valid.unwrap_or_else(|| format!("{}/account", state.ctx.public_url));
            match chosen {
                Some((index, _)) => continue_for(state, &location, index),
                None => location,
            }
        }
    };
    Ok(redirect(&location, false))
}

async fn add_session_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let query = forms::query(&uri)?;
    let view = FormView {
        continue_url: safe_continue(&state, query.get("continue")),
        ..FormView::default()
    };
    signin_form(&state, &headers, view, StatusCode::OK).await
}

async fn service_login_auth_post(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, fields.get("csrf")).await?;
    let continue_url = safe_continue(&state, fields.get("continue"));
    let lang = Lang::pick(fields.get("hl"));
    let t = lang.text();
    let email = fields.get_any(&["Email", "email"]).unwrap_or_default().trim().to_owned();
    let password = fields.get_any(&["Passwd", "password"]).unwrap_or_default().to_owned();
    let persistent = matches!(
        fields.get_any(&["PersistentCookie", "persistent"]),
        Some("yes" | "true" | "on" | "1")
    );
    if email.is_empty() || password.is_empty() || email.len() > 254 || password.len() > 1024 {
        let view = FormView {
            continue_url,
            email: email.chars().take(254).collect(),
            error: Some(t.error_missing.to_owned()),
            persistent,
            lang,
            ..FormView::default()
        };
        return signin_form(&state, &headers, view, StatusCode::OK).await;
    }
    let captcha = match (fields.get("logintoken"), fields.get("logincaptcha")) {
        (Some(token), Some(answer)) => Some((token.to_owned(), answer.to_owned())),
        _ => None,
    };
    let attempt =
        Attempt { email: email.clone(), password, captcha, persistent, client: client.clone() };
    let outcome = signin::sign_in(&state.ctx, attempt).await?;
    let failed = |error: &str, with_captcha: bool| FormView {
        continue_url: continue_url.clone(),
        email: email.clone(),
        error: Some(error.to_owned()),
        with_captcha,
        persistent,
        lang,
    };
    match outcome {
        Outcome::SignedIn { account, token, session } => {
            finish_sign_in(&state, &headers, &account, &session, &token, &continue_url).await
        }
        Outcome::SecondFactor { pending, .. } => {
            let location = format!(
                "/accounts/SecondFactor?{}continue={}",
                hl_param(lang),
                percent_encoding::utf8_percent_encode(
                    &continue_url,
                    percent_encoding::NON_ALPHANUMERIC
                )
            );
            let cookie = cookies::set(
                cookies::PENDING,
                &pending,
                cookies::Life::Seconds(state.ctx.policy.pending_sign_in_ttl_secs),
                state.secure_cookies,
            );
            Ok(with_cookies(redirect(&location, true), [cookie]))
        }
        Outcome::CaptchaRequired { wrong } => {
            let error = if wrong { t.error_captcha_wrong } else { t.error_captcha_needed };
            signin_form(&state, &headers, failed(error, true), StatusCode::OK).await
        }
        Outcome::Failed(failure) => {
            let error = match failure {
                Failure::BadCredentials => t.error_bad_credentials,
                Failure::Throttled => t.error_throttled,
                Failure::Disabled => t.error_disabled,
                Failure::Deleted => t.error_deleted,
            };
            let with_captcha =
                tessera_domain::password::captcha_needed(&state.ctx, &email, &client.ip).await?;
            signin_form(&state, &headers, failed(error, with_captcha), StatusCode::OK).await
        }
    }
}

/// Puts a new session into the browser cookie (rotating the others) and goes on to `continue`.
async fn finish_sign_in(
    state: &AppState,
    headers: &HeaderMap,
    account: &AccountRecord,
    session: &SessionRecord,
    token: &str,
    continue_url: &str,
) -> Result<Response, PageError> {
    let (set, index) = join_browser(state, headers, account, session, token).await?;
    let mut res = with_cookies(redirect(&continue_for(state, continue_url, index), true), set);
    signin_header(&mut res, account, index);
    Ok(res)
}

/// Adds a new session to the browser's cookie: a session of the same account is replaced, every
/// other token is rotated (so that a token planted before the sign-in is useless after it).
/// Answers the `Set-Cookie` lines and the new account's `authuser` index.
pub(crate) async fn join_browser(
    state: &AppState,
    headers: &HeaderMap,
    account: &AccountRecord,
    session: &SessionRecord,
    token: &str,
) -> Result<(Vec<String>, usize), PageError> {
    let mut before = signed_in(state, headers).await?;
    for same in before.iter().filter(|it| it.account.id == account.id) {
        tessera_domain::sessions::replace(&state.ctx, &same.session.id).await?;
    }
    before.retain(|it| it.account.id != account.id);
    before.truncate(state.ctx.policy.max_accounts_per_browser.saturating_sub(1));
    let mut tokens = tessera_domain::sessions::rotate(&state.ctx, &before).await?;
    tokens.push(token.to_owned());
    let index = tokens.len() - 1;
    let value = tessera_domain::sessions::cookie_value(tokens.iter().map(String::as_str));
    let life = match session.persistent {
        true => cookies::Life::Seconds(state.ctx.policy.persistent_session_ttl_secs),
        false => cookies::Life::Browser,
    };
    let set = vec![
        cookies::set(cookies::SESSION, &value, life, state.secure_cookies),
        cookies::set(cookies::PENDING, "", cookies::Life::Expired, state.secure_cookies),
    ];
    Ok((set, index))
}

/// The `google-accounts-signin` header naming the account just signed in and its index.
pub(crate) fn signin_header(res: &mut Response, account: &AccountRecord, index: usize) {
    let signin_header = format!(
        "email=\"{}\", obfuscatedid=\"{}\", sessionindex={index}",
        account.email,
        tessera_domain::accounts::subject(&account.id)
    );
    if let Ok(value) = HeaderValue::from_str(&signin_header) {
        res.headers_mut().insert("google-accounts-signin", value);
    }
}

async fn second_factor_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let query = forms::query(&uri)?;
    let continue_url = safe_continue(&state, query.get("continue"));
    let lang = Lang::pick(query.get("hl"));
    let pending = cookies::get(&headers, cookies::PENDING).unwrap_or_default();
    let Some(account) = signin::pending_account(&state.ctx, pending).await? else {
        return Ok(redirect(&start_over(lang), false));
    };
    second_factor_page(&state, &headers, &account, continue_url, lang, None)
}

/// `hl=<code>&` for a page in another language than English (the query's first parameter).
fn hl_param(lang: Lang) -> String {
    match lang {
        Lang::English => String::new(),
        _ => format!("hl={}&", lang.code()),
    }
}

/// The sign-in page in `lang`.
fn start_over(lang: Lang) -> String {
    match lang {
        Lang::English => "/accounts/ServiceLogin".to_owned(),
        _ => format!("/accounts/ServiceLogin?hl={}", lang.code()),
    }
}

fn second_factor_page(
    state: &AppState,
    headers: &HeaderMap,
    account: &AccountRecord,
    continue_url: String,
    lang: Lang,
    error: Option<String>,
) -> Result<Response, PageError> {
    let (csrf, set_cookie) = csrf_for_page(state, headers);
    let t = lang.text();
    let page = SecondFactorPage {
        lang,
        t,
        brand: &state.brand,
        csrf,
        continue_url,
        intro: fill(t.two_step_intro, &[("email", &account.email)]),
        error,
        start_over: start_over(lang),
    };
    Ok(with_cookies(render::page(StatusCode::OK, &page), set_cookie))
}

async fn second_factor_post(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, fields.get("csrf")).await?;
    let continue_url = safe_continue(&state, fields.get("continue"));
    let lang = Lang::pick(fields.get("hl"));
    let pending = cookies::get(&headers, cookies::PENDING).unwrap_or_default().to_owned();
    let code = fields.text("code");
    match signin::second_factor(&state.ctx, &pending, &code, &client).await? {
        SecondFactorOutcome::SignedIn { account, token, session } => {
            finish_sign_in(&state, &headers, &account, &session, &token, &continue_url).await
        }
        SecondFactorOutcome::WrongCode => {
            let Some(account) = signin::pending_account(&state.ctx, &pending).await? else {
                return Ok(redirect(&start_over(lang), true));
            };
            second_factor_page(
                &state,
                &headers,
                &account,
                continue_url,
                lang,
                Some(lang.text().two_step_wrong.to_owned()),
            )
        }
        SecondFactorOutcome::Restart => {
            let view = FormView {
                continue_url,
                error: Some(lang.text().two_step_again.to_owned()),
                lang,
                ..FormView::default()
            };
            let res = signin_form(&state, &headers, view, StatusCode::OK).await?;
            Ok(with_cookies(
                res,
                [cookies::set(cookies::PENDING, "", cookies::Life::Expired, state.secure_cookies)],
            ))
        }
    }
}

/// Signs the browser out of every account and goes on to `continue` (validated) or the sign-in page.
async fn logout_get(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let query = forms::query(&uri)?;
    let accounts = signed_in(&state, &headers).await?;
    tessera_domain::sessions::sign_out(&state.ctx, &accounts, &client.ip).await?;
    let sessions: Vec<SessionRecord> = accounts.iter().map(|it| it.session.clone()).collect();
    let notices = tessera_domain::sso::logout_notices(&state.ctx, &sessions).await?;
    let prefixes =
        tessera_domain::sso::continue_prefixes(&state.ctx, &state.continue_prefixes).await?;
    let location = query
        .get("continue")
        .and_then(|it| {
            tessera_domain::redirect::validate_continue(&state.ctx.public_url, &prefixes, it)
        })
        .unwrap_or_else(|| "/accounts/ServiceLogin".to_owned());
    let set = [cookies::set(cookies::SESSION, "", cookies::Life::Expired, state.secure_cookies)];
    Ok(with_cookies(super::sso::signed_out(&state, notices, &location), set))
}

/// `["gaia.l.a.r", [["gaia.l.a", 1, name, email, photo, 1, 1, 0, 0, 1, id], …]]` in session order.
async fn list_accounts(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let accounts = signed_in(&state, &headers).await?;
    let tuples: Vec<serde_json::Value> = accounts
        .iter()
        .map(|it| {
            serde_json::json!([
                "gaia.l.a",
                1,
                it.account.name,
                it.account.email,
                "",
                1,
                1,
                0,
                0,
                1,
                tessera_domain::accounts::subject(&it.account.id)
            ])
        })
        .collect();
    let body = serde_json::json!(["gaia.l.a.r", tuples]).to_string();
    Ok((
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// The content security policy of a page that shows a CAPTCHA: the default one, plus
/// `media-src 'self'` so that its `<audio>` element can play the recording.
pub(crate) const CAPTCHA_PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; media-src 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The CAPTCHA picture (`?ctoken=`), or the characters spoken (`&format=audio`, a WAV file).
async fn captcha_get(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let query = forms::query(&uri)?;
    // The format is checked before the token, so that the answer does not depend on whether the
    // challenge is live.
    let audio = match query.get("format") {
        None | Some("image") => false,
        Some("audio") => true,
        Some("text") => {
            return Err(PageError::bad_request(
                "The characters are no longer given as text. Use format=audio to hear them.",
            ));
        }
        Some(_) => {
            return Err(PageError::bad_request(
                "Unknown format: use format=audio to hear the characters, or leave format out for the picture.",
            ));
        }
    };
    let token = query.get_any(&["ctoken", "token"]).unwrap_or_default();
    let Some(picture) = tessera_domain::captcha::picture(&state.ctx, token).await? else {
        return Err(PageError::not_found());
    };
    let no_store = (header::CACHE_CONTROL, "no-store");
    match audio {
        // A challenge stored before recordings were made has none.
        true if picture.wav.is_empty() => Err(PageError::not_found()),
        true => {
            let name = (header::CONTENT_DISPOSITION, "inline; filename=\"captcha.wav\"");
            Ok(([(header::CONTENT_TYPE, "audio/wav"), no_store, name], picture.wav).into_response())
        }
        false => Ok(([(header::CONTENT_TYPE, "image/png"), no_store], picture.png).into_response()),
    }
}
