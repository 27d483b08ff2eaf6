//! The protocol playground (`/playground`): a developer signed in to tessera picks a protocol and
//! steps through its flow against this server, every request and answer shown raw.
//!
//! The playground is a client like any other. Each step is an HTTP request made with `reqwest` to
//! this server's public URL (the issuer), recorded as it was sent and answered ([`Exchange`]); no
//! step calls a protocol engine of the domain. The only domain calls are the ones the developer
//! console makes for a signed-in developer: their projects, and the playground's OAuth 2.0 clients
//! in one of them (created, or their secret reset, through `oauth2::clients` as the console does).
//! ID tokens are verified by the client library's `IdTokenVerifier` against the published JWKS.
//!
//! What a flow needs between steps (the client secret, the PKCE verifier, the tokens it got) is
//! kept in one cookie sealed under the key-encryption key and bound to the signed-in account;
//! nothing secret goes into a URL the playground builds.

mod authsub;
mod clientlogin;
mod device_flow;
mod device_login;
mod oauth1;
mod oauth2;
mod openid2;
mod push;
mod service_account;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use askama::Template;
use axum::Router;
use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use tessera_domain::credentials::Protocol;
use tessera_domain::sessions::SignedIn;

use crate::error::PageError;
use crate::forms::{self, Fields, Form};
use crate::pages::{check_csrf, csrf_for_page, pick, redirect, signed_in, with_cookies};
use crate::{AppState, cookies, render};

/// The sealed cookie holding a flow's state between steps.
const STATE_COOKIE: &str = "TPLAY";
/// How long a playground flow's state lives.
const STATE_TTL_SECS: i64 = 3600;
/// The largest response body shown in full; longer ones are cut (and say so).
const SHOWN_BODY_LIMIT: usize = 64 * 1024;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/playground", get(index_get))
        .route("/playground/{protocol}", get(protocol_get))
        .route("/playground/{protocol}/{step}", post(step_post))
        .route("/playground/callback", get(oauth2::callback_get))
        .route("/playground/oauth1/callback", get(oauth1::callback_get))
        .route("/playground/authsub/callback", get(authsub::callback_get))
        .route("/playground/openid2/callback", get(openid2::callback_get))
}

/// The protocols the playground walks through, in the order the page lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    OAuth2,
    OAuth1,
    AuthSub,
    ClientLogin,
    OpenId2,
    DeviceLogin,
    Push,
}

impl Walk {
    const ALL: [Walk; 7] = [
        Walk::OAuth2,
        Walk::OAuth1,
        Walk::AuthSub,
        Walk::ClientLogin,
        Walk::OpenId2,
        Walk::DeviceLogin,
        Walk::Push,
    ];

    fn key(self) -> &'static str {
        match self {
            Walk::OAuth2 => "oauth2",
            Walk::OAuth1 => "oauth1",
            Walk::AuthSub => "authsub",
            Walk::ClientLogin => "clientlogin",
            Walk::OpenId2 => "openid2",
            Walk::DeviceLogin => "device",
            Walk::Push => "push",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Walk::OAuth2 => "OAuth 2.0 and OpenID Connect",
            Walk::OAuth1 => "OAuth 1.0a",
            Walk::AuthSub => "AuthSub",
            Walk::ClientLogin => "ClientLogin",
            Walk::OpenId2 => "OpenID 2.0",
            Walk::DeviceLogin => "Android device login",
            Walk::Push => "Push (C2DM and GCM)",
        }
    }

    fn parse(key: &str) -> Option<Walk> {
        Walk::ALL.into_iter().find(|it| it.key() == key)
    }

    /// Whether this deployment serves the protocol: its routes (`[legacy]`) and its credentials
    /// (`Policy::disabled_protocols`) are both on.
    fn enabled(self, state: &AppState) -> bool {
        let disabled = &state.ctx.policy.disabled_protocols;
        match self {
            Walk::OAuth2 => !disabled.contains(&Protocol::OAuth2),
            Walk::OAuth1 => state.legacy.oauth1 && !disabled.contains(&Protocol::OAuth1),
            Walk::AuthSub => state.legacy.authsub && !disabled.contains(&Protocol::AuthSub),
            Walk::ClientLogin => {
                state.legacy.clientlogin && !disabled.contains(&Protocol::ClientLogin)
            }
            Walk::OpenId2 => state.legacy.openid2 && !disabled.contains(&Protocol::OpenId2),
            Walk::DeviceLogin => state.legacy.device && !disabled.contains(&Protocol::Device),
            Walk::Push => !disabled.contains(&Protocol::Push),
        }
    }
}

/// What a flow keeps between steps. Sealed in [`STATE_COOKIE`]; every field is the developer's
/// own (their client's secret, the tokens their flow got).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Flow {
    /// The account the state belongs to (also bound as the seal's associated data).
    account: String,
    expires_at: i64,
    /// The project the playground client lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    project: Option<String>,
    /// The playground's OAuth 2.0 web client and its secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    /// OAuth 2.0: the authorization request's PKCE verifier, `state`, `nonce`, the code it got and
    /// the tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pkce_verifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// The device flow: the playground's device client and the device code it polls with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_code: Option<String>,
    /// The verification page with the user code (`verification_uri_complete`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_page: Option<String>,
    /// The public client the tokens above belong to (the device client), when not the web
    /// client: token requests then name it with `client_id` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_client: Option<String>,
    /// The JWT bearer walk: the playground's service account, its key id and private key (PKCS#8
    /// DER, base64), which exists nowhere else: the server keeps only the public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service_account: Option<(String, String, String)>,
    /// OAuth 1.0a: the request token and its secret, the verifier, the access token and its secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oauth1_token: Option<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oauth1_verifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oauth1_access: Option<(String, String)>,
    /// The OAuth 1.0 consumer the walk signs as and its HMAC secret (`anonymous` unless the
    /// developer named a registered consumer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oauth1_consumer: Option<(String, String)>,
    /// AuthSub: the single-use token from the browser step, then the session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authsub_single: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authsub_session: Option<String>,
    /// OpenID 2.0: the `return_to` of the request sent, then the assertion's `openid.*` fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    openid2_return_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    openid2_assertion: Option<Vec<(String, String)>>,
    /// Push: the sender project, its API key, the install (device id and install credential), the
    /// registration id and the message last read from the device's stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    push_project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    push_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    push_install: Option<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    push_registration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    push_message: Option<String>,
    /// Android device login: the email, Android ID and master token, then the `Authorization`
    /// value of the per-service token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_master: Option<(String, String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_auth: Option<String>,
    /// ClientLogin: the `Auth` token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clientlogin_auth: Option<String>,
}

fn seal_aad(account: &str) -> Vec<u8> {
    format!("playground-flow:{account}").into_bytes()
}

impl Flow {
    fn fresh(state: &AppState, me: &SignedIn) -> Flow {
        Flow {
            account: me.account.id.clone(),
            expires_at: state.ctx.now() + STATE_TTL_SECS,
            ..Flow::default()
        }
    }

    /// The flow this browser carries for `me`, or a fresh one (missing, expired, another
    /// account's, or tampered with).
    fn load(state: &AppState, headers: &HeaderMap, me: &SignedIn) -> Flow {
        cookies::get(headers, STATE_COOKIE)
            .and_then(|sealed| state.ctx.kek.open(&seal_aad(&me.account.id), sealed).ok())
            .and_then(|bytes| serde_json::from_slice::<Flow>(&bytes).ok())
            .filter(|it| it.account == me.account.id && it.expires_at > state.ctx.now())
            .unwrap_or_else(|| Flow::fresh(state, me))
    }

    /// The `Set-Cookie` that keeps this flow.
    fn cookie(&self, state: &AppState) -> Result<String, PageError> {
        let json = serde_json::to_vec(self).map_err(|err| internal(format!("flow: {err}")))?;
        let sealed = state
            .ctx
            .kek
            .seal(state.ctx.rng.as_ref(), &seal_aad(&self.account), &json)
            .map_err(|err| internal(format!("flow seal: {err}")))?;
        let life = cookies::Life::Seconds(STATE_TTL_SECS);
        Ok(cookies::set(STATE_COOKIE, &sealed, life, state.secure_cookies))
    }
}

fn internal(detail: String) -> PageError {
    PageError::from(tessera_domain::Error::Internal(detail))
}

/// One HTTP request the playground made and the answer it got, as they went over the wire.
pub(crate) struct Exchange {
    pub(crate) title: String,
    pub(crate) request: String,
    pub(crate) response: String,
    pub(crate) status: u16,
    /// The response body, for the step to read.
    pub(crate) body: String,
}

impl Exchange {
    /// A header of the response, as shown.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.response
            .lines()
            .skip(1)
            .take_while(|line| !line.is_empty())
            .filter_map(|line| line.split_once(": "))
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.to_owned())
    }
}

/// A form field of a step.
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) label: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) value: String,
    /// For `select`: (value, label) pairs.
    pub(crate) options: Vec<(String, String)>,
}

impl Field {
    pub(crate) fn text(name: &'static str, label: &'static str, value: &str) -> Field {
        Field { name, label, kind: "text", value: value.to_owned(), options: Vec::new() }
    }

    pub(crate) fn password(name: &'static str, label: &'static str) -> Field {
        Field { name, label, kind: "password", value: String::new(), options: Vec::new() }
    }
}

/// A next step the page offers: a POST form to `/playground/<protocol>/<step>`.
pub(crate) struct Step {
    pub(crate) step: &'static str,
    pub(crate) label: &'static str,
    pub(crate) fields: Vec<Field>,
}

impl Step {
    pub(crate) fn button(step: &'static str, label: &'static str) -> Step {
        Step { step, label, fields: Vec::new() }
    }
}

/// A JWT taken apart: its header and claims, and whether the signature checked out.
pub(crate) struct Decoded {
    pub(crate) what: &'static str,
    pub(crate) header: String,
    pub(crate) claims: String,
    pub(crate) verified: bool,
    pub(crate) verdict: String,
}

/// What a step shows.
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) notes: Vec<String>,
    pub(crate) error: Option<String>,
    pub(crate) exchanges: Vec<Exchange>,
    pub(crate) decoded: Vec<Decoded>,
    /// A URL for the browser to visit next (an authorization page), with its link text.
    pub(crate) visit: Option<(String, &'static str)>,
    pub(crate) next: Vec<Step>,
}

struct ProtocolLink {
    key: &'static str,
    title: &'static str,
}

#[derive(Template)]
#[template(path = "playground.html")]
struct PlaygroundPage<'a> {
    brand: &'a str,
    csrf: String,
    email: String,
    protocols: Vec<ProtocolLink>,
    current: Option<ProtocolLink>,
    has_projects: bool,
    outcome: Outcome,
}

/// The signed-in developer (`authuser` picks among several), or a redirect to sign in.
/// What a protocol's callback (the browser coming back from the server's page) starts with.
pub(super) struct Returned {
    pub(super) query: Fields,
    pub(super) me: SignedIn,
    pub(super) flow: Flow,
    /// Already noting the address the browser came back to.
    pub(super) outcome: Outcome,
}

/// The start every callback shares: its query, the signed-in developer (or the answer that sends
/// them to sign in and back to `walk_page`), the flow, and a note of where the browser came back.
pub(super) async fn returned(
    state: &AppState,
    headers: &HeaderMap,
    uri: &http::Uri,
    walk_page: &str,
) -> Result<Result<Returned, Response>, PageError> {
    let query = forms::query(uri)?;
    let me = match developer(state, headers, None, walk_page).await? {
        Ok(me) => me,
        Err(res) => return Ok(Err(res)),
    };
    let flow = Flow::load(state, headers, &me);
    let mut outcome = Outcome::default();
    let shown = match uri.query() {
        Some(query) => format!("{}?{query}", public(state, uri.path())),
        None => public(state, uri.path()),
    };
    outcome.notes.push(format!("The browser came back to {shown}"));
    Ok(Ok(Returned { query, me, flow, outcome }))
}

async fn developer(
    state: &AppState,
    headers: &HeaderMap,
    authuser: Option<&str>,
    back_to: &str,
) -> Result<Result<SignedIn, Response>, PageError> {
    let accounts = signed_in(state, headers).await?;
    match pick(&accounts, authuser) {
        Some((_, me)) => Ok(Ok(me)),
        None => {
            let to = crate::pages::encode(back_to);
            Ok(Err(redirect(&format!("/accounts/ServiceLogin?continue={to}"), false)))
        }
    }
}

/// Renders the playground with `outcome` under `walk`, saving `flow`.
pub(crate) async fn show(
    state: &AppState,
    headers: &HeaderMap,
    me: &SignedIn,
    walk: Option<Walk>,
    flow: Option<&Flow>,
    mut outcome: Outcome,
) -> Result<Response, PageError> {
    let projects = tessera_domain::projects::owned_by(&state.ctx, &me.account.id).await?;
    if let Some(walk) = walk
        && outcome.next.is_empty()
        && outcome.visit.is_none()
    {
        outcome.next = start_steps(walk, &projects, flow);
    }
    let (csrf, set_csrf) = csrf_for_page(state, headers);
    let page = PlaygroundPage {
        brand: &state.brand,
        csrf,
        email: me.account.email.clone(),
        protocols: Walk::ALL
            .into_iter()
            .filter(|it| it.enabled(state))
            .map(|it| ProtocolLink { key: it.key(), title: it.title() })
            .collect(),
        current: walk.map(|it| ProtocolLink { key: it.key(), title: it.title() }),
        has_projects: !projects.is_empty(),
        outcome,
    };
    let status =
        if page.outcome.error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let mut cookies = set_csrf.into_iter().collect::<Vec<_>>();
    if let Some(flow) = flow {
        cookies.push(flow.cookie(state)?);
    }
    let mut res = with_cookies(render::page(status, &page), cookies);
    res.headers_mut()
        .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The first steps of a protocol: their forms.
fn start_steps(
    walk: Walk,
    projects: &[tessera_store::ProjectRecord],
    flow: Option<&Flow>,
) -> Vec<Step> {
    let project = || Field {
        name: "project",
        label: "Project (the playground client is created in it)",
        kind: "select",
        value: String::new(),
        options: projects.iter().map(|it| (it.id.clone(), it.name.clone())).collect(),
    };
    match walk {
        Walk::OAuth2 => oauth2::start_steps(project, flow),
        Walk::OAuth1 => vec![Step {
            step: "start",
            label: "Get a request token",
            fields: vec![
                Field::text("scope", "Scopes (a service's)", ""),
                Field::text("consumer", "Consumer key (a registered domain, or anonymous)", ""),
                Field::password("consumer_secret", "Its HMAC consumer secret (none for anonymous)"),
            ],
        }],
        Walk::AuthSub => vec![Step {
            step: "start",
            label: "Build the AuthSubRequest URL",
            fields: vec![Field::text("scope", "Scopes (a service's)", "")],
        }],
        Walk::ClientLogin => {
            let mut steps = vec![Step {
                step: "start",
                label: "Sign in with ClientLogin",
                fields: vec![
                    Field::text("Email", "Email", ""),
                    Field::password("Passwd", "Password"),
                    Field::text("service", "Service name", ""),
                    clientlogin::source_field(flow),
                ],
            }];
            // An `Auth` the flow still holds can be presented again.
            if flow.is_some_and(|it| it.clientlogin_auth.is_some()) {
                steps.push(Step::button("caller", "Ask the caller check"));
            }
            steps
        }
        Walk::OpenId2 => {
            vec![Step::button("start", "Discover the provider and build checkid_setup")]
        }
        Walk::DeviceLogin => device_login::start_steps(),
        Walk::Push => push::start_steps(project),
    }
}

async fn index_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let query = forms::query(&uri)?;
    let me = match developer(&state, &headers, query.get("authuser"), "/playground").await? {
        Ok(me) => me,
        Err(res) => return Ok(res),
    };
    show(&state, &headers, &me, None, None, Outcome::default()).await
}

/// The protocol named in the path, if this deployment serves it.
fn walk_of(state: &AppState, key: &str) -> Result<Walk, PageError> {
    Walk::parse(key).filter(|it| it.enabled(state)).ok_or_else(PageError::not_found)
}

async fn protocol_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(protocol): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let walk = walk_of(&state, &protocol)?;
    let query = forms::query(&uri)?;
    let here = format!("/playground/{}", walk.key());
    let me = match developer(&state, &headers, query.get("authuser"), &here).await? {
        Ok(me) => me,
        Err(res) => return Ok(res),
    };
    // The flow's pending steps (a device code to poll with) are offered again.
    let flow = Flow::load(&state, &headers, &me);
    show(&state, &headers, &me, Some(walk), Some(&flow), Outcome::default()).await
}

async fn step_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((protocol, step)): Path<(String, String)>,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let walk = walk_of(&state, &protocol)?;
    check_csrf(&state, &headers, fields.get("csrf")).await?;
    let here = format!("/playground/{}", walk.key());
    let me = match developer(&state, &headers, None, &here).await? {
        Ok(me) => me,
        Err(res) => return Ok(res),
    };
    let mut flow = Flow::load(&state, &headers, &me);
    let input = StepInput { state: &state, me: &me, fields: &fields };
    let outcome = match walk {
        Walk::OAuth2 => oauth2::step(&input, &mut flow, &step).await?,
        Walk::OAuth1 => oauth1::step(&input, &mut flow, &step).await?,
        Walk::AuthSub => authsub::step(&input, &mut flow, &step).await?,
        Walk::ClientLogin => clientlogin::step(&input, &mut flow, &step).await?,
        Walk::OpenId2 => openid2::step(&input, &mut flow, &step).await?,
        Walk::DeviceLogin => device_login::step(&input, &mut flow, &step).await?,
        Walk::Push => push::step(&input, &mut flow, &step).await?,
    };
    show(&state, &headers, &me, Some(walk), Some(&flow), outcome).await
}

/// What a step handler gets: the app, the developer and the submitted form.
pub(crate) struct StepInput<'a> {
    pub(crate) state: &'a AppState,
    pub(crate) me: &'a SignedIn,
    pub(crate) fields: &'a Fields,
}

// ---------------------------------------------------------------------------------------------
// Over the wire
// ---------------------------------------------------------------------------------------------

/// The playground's HTTP client: no redirects followed (each hop is shown), a short timeout.
fn http() -> &'static reqwest::Client {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .user_agent("tessera-playground")
            .build()
            .unwrap_or_default()
    })
}

/// This server's public URL joined with `path`.
pub(crate) fn public(state: &AppState, path: &str) -> String {
    format!("{}{path}", state.ctx.public_url)
}

/// Sends `request` to this server and records the exchange; `hide` names form fields whose value
/// is masked in the shown request (a password).
pub(crate) async fn send(
    title: &str,
    request: reqwest::RequestBuilder,
    hide: &[&str],
) -> Result<Exchange, PageError> {
    let request = request.build().map_err(|err| internal(format!("playground request: {err}")))?;
    let shown_request = show_request(&request, hide);
    let response = match http().execute(request).await {
        Ok(it) => it,
        Err(err) => {
            return Ok(Exchange {
                title: title.to_owned(),
                request: shown_request,
                response: format!("(no answer: {err})"),
                status: 0,
                body: String::new(),
            });
        }
    };
    let status = response.status();
    let mut shown =
        format!("HTTP/1.1 {} {}\n", status.as_u16(), status.canonical_reason().unwrap_or_default());
    for (name, value) in response.headers() {
        shown.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())));
    }
    let body = response.text().await.unwrap_or_default();
    shown.push('\n');
    shown.push_str(cut(&body));
    Ok(Exchange {
        title: title.to_owned(),
        request: shown_request,
        response: shown,
        status: status.as_u16(),
        body,
    })
}

/// Opens a stream (server-sent events) and records its head and what arrived until the first
/// complete event, or until `wait` passed; then closes it. The playground holds no long-lived
/// connection.
pub(crate) async fn send_stream(
    title: &str,
    request: reqwest::RequestBuilder,
    wait: Duration,
) -> Result<Exchange, PageError> {
    let request = request.build().map_err(|err| internal(format!("playground request: {err}")))?;
    let shown_request = show_request(&request, &[]);
    let mut exchange = Exchange {
        title: title.to_owned(),
        request: shown_request,
        response: String::new(),
        status: 0,
        body: String::new(),
    };
    let mut response = match http().execute(request).await {
        Ok(it) => it,
        Err(err) => {
            exchange.response = format!("(no answer: {err})");
            return Ok(exchange);
        }
    };
    let status = response.status();
    let mut shown =
        format!("HTTP/1.1 {} {}\n", status.as_u16(), status.canonical_reason().unwrap_or_default());
    for (name, value) in response.headers() {
        shown.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())));
    }
    let mut body = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            let text = String::from_utf8_lossy(&body);
            // Events end with a blank line: every part but the last is complete.
            let mut events: Vec<&str> = text.split("\n\n").collect();
            events.pop();
            let complete_event =
                events.iter().any(|it| it.lines().any(|line| line.starts_with("data:")));
            if complete_event || body.len() > SHOWN_BODY_LIMIT {
                break;
            }
        }
    };
    let timed_out = tokio::time::timeout(wait, read).await.is_err();
    let body = String::from_utf8_lossy(&body).into_owned();
    shown.push('\n');
    shown.push_str(cut(&body));
    if status.is_success() {
        shown.push_str(if timed_out {
            "\n(nothing more arrived; the playground closed the stream)"
        } else {
            "\n(the playground closed the stream after the first event)"
        });
    }
    exchange.response = shown;
    exchange.status = status.as_u16();
    exchange.body = body;
    Ok(exchange)
}

fn cut(text: &str) -> &str {
    if text.len() <= SHOWN_BODY_LIMIT {
        return text;
    }
    let mut end = SHOWN_BODY_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn show_request(request: &reqwest::Request, hide: &[&str]) -> String {
    let url = request.url();
    let mut target = url.path().to_owned();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let mut out = format!("{} {target} HTTP/1.1\n", request.method());
    out.push_str(&format!("host: {}\n", url.host_str().unwrap_or_default()));
    if let Some(port) = url.port() {
        out.truncate(out.len() - 1);
        out.push_str(&format!(":{port}\n"));
    }
    for (name, value) in request.headers() {
        out.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())));
    }
    out.push('\n');
    if let Some(body) = request.body().and_then(|it| it.as_bytes()) {
        let text = String::from_utf8_lossy(body);
        if hide.is_empty() {
            out.push_str(&text);
        } else {
            let masked: Vec<String> = text
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if hide.contains(&name) => format!("{name}=********"),
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&masked.join("&"));
        }
    }
    out
}

/// `key=value` lines (ClientLogin, AuthSub) or a urlencoded body (OAuth 1.0a), as pairs.
pub(crate) fn form_pairs(body: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(body.trim().as_bytes()).into_owned().collect()
}

pub(crate) fn line_value(body: &str, key: &str) -> Option<String> {
    body.lines()
        .filter_map(|line| line.split_once('='))
        .find(|(name, _)| name.trim() == key)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|it| !it.is_empty())
}

/// The caller check a resource server would make for a request carrying `authorization`:
/// `POST /accounts/caller` with the header's value, the method and the URL it was sent to.
pub(crate) async fn caller_check(
    state: &AppState,
    authorization: &str,
) -> Result<Exchange, PageError> {
    let question = serde_json::json!({
        "authorization": authorization,
        "method": "GET",
        "url": public(state, "/playground"),
    });
    let request = http().post(public(state, "/accounts/caller")).json(&question);
    send("Caller check (what a resource server asks)", request, &[]).await
}

/// A random value for `state`, nonces and PKCE verifiers, from the server's RNG.
pub(crate) fn random(state: &AppState, bytes: usize) -> String {
    tessera_crypto::random::token(state.ctx.rng.as_ref(), bytes)
}

/// The client library's clock, read from the server's (so that a fixed clock in tests holds).
pub(crate) struct ServerClock(pub(crate) Arc<dyn tessera_domain::Clock>);

impl std::fmt::Debug for ServerClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerClock")
    }
}

impl tessera_client::Clock for ServerClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0.now().max(0) as u64)
    }
}

pub(crate) fn client() -> &'static reqwest::Client {
    http()
}
