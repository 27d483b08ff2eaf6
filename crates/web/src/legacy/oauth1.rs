//! OAuth 1.0a over HTTP: `OAuthGetRequestToken` and `OAuthGetAccessToken` (GET or POST; the
//! parameters in the `Authorization: OAuth` header, the query or a urlencoded body), and the
//! browser's `OAuthAuthorizeToken` (sign-in, the one consent page, then the callback with
//! `oauth_token` and `oauth_verifier`, or the verifier shown for `oob`). Errors are `text/plain`
//! with the `oauth_problem` word first; 401s carry `WWW-Authenticate: OAuth`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tessera_domain::caller::{self, Presented};
use tessera_domain::interaction::{self, Decision, Step};
use tessera_domain::oauth1::{self, Answer, Incoming, Pending};
use tessera_proto_oauth1::Problem;

use super::{authorization, deprecation, request_facts, text};
use crate::error::PageError;
use crate::forms::{self, Form};
use crate::pages::consent::{self, ConsentForm, FlowMessage, Next};
use crate::pages::lang::{Lang, fill};
use crate::pages::{Client, check_csrf, redirect, signed_in};
use crate::{AppState, render};
use tessera_domain::credentials::Protocol;
use tessera_domain::legacy::{self, Verdict};

pub(super) fn router() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ["/accounts", ""] {
        router = router
            .route(
                &format!("{prefix}/OAuthGetRequestToken"),
                get(request_token).post(request_token),
            )
            .route(&format!("{prefix}/OAuthGetAccessToken"), get(access_token).post(access_token))
            .route(
                &format!("{prefix}/OAuthAuthorizeToken"),
                get(authorize_get).post(authorize_post),
            );
    }
    router
}

/// A refused signed request: the problem's status, its body, and on a 401 the challenge.
pub(crate) fn problem(state: &AppState, problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut res = text(status, None, problem.body());
    if status == StatusCode::UNAUTHORIZED {
        let challenge = format!(
            "OAuth realm=\"{}\", oauth_problem=\"{}\"",
            state.ctx.public_url,
            problem.word()
        );
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
    }
    res
}

/// The signed request as the engine takes it: the header's `OAuth` pairs (read by the one
/// parser), the URL the client addressed, and a urlencoded body's pairs.
pub(crate) fn incoming(
    state: &AppState,
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Incoming, Problem> {
    let header = match caller::parse_authorization(authorization(headers)) {
        Ok(Presented::OAuth1(pairs)) => pairs,
        Err(caller::CallerError::Malformed) => {
            return Err(Problem::ParameterRejected("Authorization".to_owned()));
        }
        _ => Vec::new(),
    };
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|it| it.to_str().ok()).unwrap_or_default();
    let mime = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let form = if mime == "application/x-www-form-urlencoded" && !body.is_empty() {
        let body =
            std::str::from_utf8(body).map_err(|_| Problem::ParameterRejected("body".to_owned()))?;
        tessera_proto_oauth1::parse_form(body)?
    } else {
        Vec::new()
    };
    Ok(Incoming { facts: request_facts(state, method, uri, headers), header, form })
}

/// The `oauth_consumer_key` a request names (header, body or query), not yet verified.
fn consumer_key(incoming: &Incoming) -> Option<&str> {
    let query = incoming.facts.url.split_once('?').map(|(_, query)| query).unwrap_or_default();
    incoming
        .header
        .iter()
        .chain(&incoming.form)
        .find(|(k, _)| k == "oauth_consumer_key")
        .map(|(_, v)| v.as_str())
        .or_else(|| query.split('&').find_map(|pair| pair.strip_prefix("oauth_consumer_key=")))
}

async fn request_token(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Response, PageError> {
    let incoming = match incoming(&state, &method, &uri, &headers, &body) {
        Ok(incoming) => incoming,
        Err(err) => return Ok(problem(&state, &err)),
    };
    // The deprecation switch for the consumer the request names (an unknown one is refused by the
    // verification anyway).
    let verdict = legacy::gate(&state.ctx, Protocol::OAuth1, consumer_key(&incoming)).await?;
    if let Verdict::Refused(notice) = &verdict {
        let refused = Problem::ConsumerKeyRefused { advice: notice.link.clone() };
        return Ok(deprecation::answer(&verdict, problem(&state, &refused)));
    }
    let res = match oauth1::request_token(&state.ctx, &incoming).await? {
        Ok((token, secret)) => {
            text(StatusCode::OK, None, tessera_proto_oauth1::request_token_body(&token, &secret))
        }
        Err(err) => problem(&state, &err),
    };
    Ok(deprecation::answer(&verdict, res))
}

async fn access_token(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Response, PageError> {
    let incoming = match incoming(&state, &method, &uri, &headers, &body) {
        Ok(incoming) => incoming,
        Err(err) => return Ok(problem(&state, &err)),
    };
    Ok(match oauth1::access_token(&state.ctx, &incoming).await? {
        Ok((token, secret)) => {
            text(StatusCode::OK, None, tessera_proto_oauth1::access_token_body(&token, &secret))
        }
        Err(err) => problem(&state, &err),
    })
}

/// The authorization page's own parameters, from its query (GET) or the consent form's copy of it.
struct Asked {
    query: String,
    token: String,
    callback: Option<String>,
    hd: Option<String>,
    /// `hl`: the language of the pages.
    hl: Option<String>,
    /// `btmpl=mobile`: the compact consent page.
    compact: bool,
}

fn asked(query: &str) -> Result<Asked, PageError> {
    let fields = forms::query_fields(query)?;
    let token = fields
        .get("oauth_token")
        .filter(|it| !it.is_empty())
        .ok_or_else(|| PageError::bad_request("The request token is missing."))?
        .to_owned();
    let kept: Vec<String> =
        query.split('&').filter(|it| !it.starts_with("authuser=")).map(str::to_owned).collect();
    Ok(Asked {
        query: kept.join("&"),
        token,
        callback: fields.get("oauth_callback").map(str::to_owned),
        hd: fields.get("hd").map(str::to_owned),
        hl: fields.get("hl").filter(|it| !it.is_empty()).map(str::to_owned),
        compact: fields.get("btmpl") == Some("mobile"),
    })
}

async fn pending(state: &AppState, asked: &Asked) -> Result<Pending, PageError> {
    oauth1::pending(&state.ctx, &asked.token, asked.callback.as_deref())
        .await?
        .ok_or_else(|| PageError::bad_request("The request token is invalid."))
}

async fn authorize_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Client(client): Client,
) -> Result<Response, PageError> {
    let raw = uri.query().unwrap_or_default();
    let asked = asked(raw)?;
    let pending = pending(&state, &asked).await?;
    let accounts = signed_in(&state, &headers).await?;
    let authuser = forms::query_fields(raw)?.get("authuser").map(str::to_owned);
    let request = oauth1::interaction(&pending, authuser, asked.hd.clone(), asked.hl.clone());
    let step = interaction::start(&state.ctx, &request, &accounts, &client.ip).await?;
    render_step(&state, &headers, &pending, &asked, step, false, Lang::of(&request.asks)).await
}

async fn authorize_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    Form(fields): Form,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, fields.get("csrf")).await?;
    let asked = asked(fields.get("query").unwrap_or_default())?;
    let pending = pending(&state, &asked).await?;
    let accounts = signed_in(&state, &headers).await?;
    let decision = match fields.get("action") {
        Some("allow") => Decision::Allow,
        _ => Decision::Deny,
    };
    let authuser = fields.get("authuser").map(str::to_owned);
    let request = oauth1::interaction(&pending, authuser, asked.hd.clone(), asked.hl.clone());
    let step = interaction::decide(&state.ctx, &request, &accounts, decision, &client.ip).await?;
    render_step(&state, &headers, &pending, &asked, step, true, Lang::of(&request.asks)).await
}

async fn render_step(
    state: &AppState,
    headers: &HeaderMap,
    pending: &Pending,
    asked: &Asked,
    step: Step,
    after_post: bool,
    lang: Lang,
) -> Result<Response, PageError> {
    let here = format!("{}/accounts/OAuthAuthorizeToken?{}", state.ctx.public_url, asked.query);
    let form = ConsentForm {
        action: "/accounts/OAuthAuthorizeToken",
        hidden: vec![("query", asked.query.clone())],
        compact: asked.compact,
        lang,
    };
    match consent::person_step(state, headers, step, &here, after_post, form)? {
        Next::Shown(response) => Ok(response),
        Next::Approved(approved) => match oauth1::approve(&state.ctx, &approved, pending).await? {
            Some(answer) => Ok(answer_response(state, answer, pending, after_post, lang)),
            None => Err(PageError::bad_request("The request token is invalid.")),
        },
        Next::Refused => {
            let answer = oauth1::deny(&state.ctx, pending).await?;
            Ok(answer_response(state, answer, pending, after_post, lang))
        }
    }
}

fn answer_response(
    state: &AppState,
    answer: Answer,
    pending: &Pending,
    after_post: bool,
    lang: Lang,
) -> Response {
    let t = lang.text();
    match answer {
        Answer::Redirect(location) => redirect(&location, after_post),
        Answer::ShowVerifier(verifier) => {
            let page = FlowMessage {
                lang: lang.code(),
                brand: &state.brand,
                heading: t.granted_heading,
                message: fill(t.granted_message, &[("app", &pending.name), ("code", &verifier)]),
                link: "/account".to_owned(),
                link_text: t.to_account,
            };
            render::page(StatusCode::OK, &page)
        }
        Answer::DeniedOob => {
            let page = FlowMessage {
                lang: lang.code(),
                brand: &state.brand,
                heading: t.denied_heading,
                message: fill(t.denied_message, &[("app", &pending.name)]),
                link: "/account".to_owned(),
                link_text: t.to_account,
            };
            render::page(StatusCode::OK, &page).into_response()
        }
    }
}
