//! The front-end token proxy over HTTP (`docs/proxy.md`): `POST /proxy/request?app=…` (a JSON
//! body in the style of `gadgets.io.makeRequest`, or a form), its CORS preflight, and the approval
//! page `/proxy/approve`, which runs the one interaction flow and its one consent page.
//!
//! What may be called, with which credential, and which addresses may be connected to is decided
//! by `domain::proxy`; [`HttpFetcher`] is its outgoing HTTP: names resolved here, every address
//! checked by the domain's guard, the connection pinned to a checked address, no redirects
//! followed, no cookies, the body read up to the cap.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tessera_domain::interaction;
use tessera_domain::proxy::{
    self, AddressGuard, Answer, Approval, FetchError, Fetched, Fetcher, Outgoing, ProxyRequest,
    Refusal,
};

use crate::error::PageError;
use crate::forms::{Fields, Form, query};
use crate::oauth2::json_no_store;
use crate::pages::consent::{self, ConsentForm, Next};
use crate::pages::lang::Lang;
use crate::pages::{Client, MessagePage, check_csrf, redirect, signed_in};
use crate::{AppState, render};

/// The header a front-end sends with every proxied request: a cross-origin page cannot send it
/// without a CORS preflight, which only the app's registered origins pass.
pub const PROXY_HEADER: &str = "x-tessera-proxy";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/proxy/request", post(request_post).options(request_options))
        .route("/proxy/approve", get(approve_get).post(approve_post))
}

/// The `Origin` header's value.
fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|it| it.to_str().ok())
}

fn refused(status: StatusCode, code: &str, description: &str) -> Response {
    json_no_store(status, &json!({ "error": code, "error_description": description }))
}

/// Adds the CORS answer for a registered `origin`: that origin, with credentials.
fn with_cors(mut res: Response, origin: &str) -> Response {
    let headers = res.headers_mut();
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    res
}

/// The app named by the query's `app`, and the request's origin if it is one of the app's.
async fn app_and_origin(
    state: &AppState,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> Result<(String, String), Response> {
    let fields = query(uri).map_err(|_| {
        refused(StatusCode::BAD_REQUEST, "invalid_request", "The query is malformed.")
    })?;
    let app_id = fields.text("app");
    let found = match proxy::load(&state.ctx, &app_id).await {
        Ok(found) => found,
        Err(err) => return Err(crate::error::PageError::from(err).into_response()),
    };
    let Some((_, app)) = found else {
        return Err(refused(StatusCode::NOT_FOUND, "unknown_app", "No front-end app has this id."));
    };
    match origin(headers) {
        Some(origin) if app.has_origin(origin) => Ok((app_id, origin.to_owned())),
        _ => Err(refused(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "The request does not come from one of the app's registered origins.",
        )),
    }
}

/// The CORS preflight: answered with permission only for the app's registered origins.
async fn request_options(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let origin = match app_and_origin(&state, &uri, &headers).await {
        Ok((_, origin)) => origin,
        Err(res) => return res,
    };
    let mut res = StatusCode::NO_CONTENT.into_response();
    let out = res.headers_mut();
    out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
    out.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, x-tessera-proxy"),
    );
    out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    with_cors(res, &origin)
}

/// The JSON form (`gadgets.io.makeRequest`'s parameters, by name).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JsonRequest {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The request body, as text.
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    return_to: Option<String>,
    #[serde(default)]
    authuser: Option<String>,
}

impl JsonRequest {
    fn from_form(fields: &Fields) -> JsonRequest {
        JsonRequest {
            url: fields.text("url"),
            method: fields.get("method").map(str::to_owned),
            headers: fields
                .get("contentType")
                .map(|it| BTreeMap::from([("Content-Type".to_owned(), it.to_owned())]))
                .unwrap_or_default(),
            body: fields.get("body").map(str::to_owned),
            return_to: fields.get("returnTo").map(str::to_owned),
            authuser: fields.get("authuser").map(str::to_owned),
        }
    }
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<JsonRequest, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|it| it.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/json" => serde_json::from_slice(body)
            .map_err(|err| format!("The JSON body is not a proxy request: {err}")),
        "application/x-www-form-urlencoded" => Fields::parse(body)
            .map(|fields| JsonRequest::from_form(&fields))
            .map_err(|_| "The form body is malformed.".to_owned()),
        _ => Err("Send application/json or application/x-www-form-urlencoded.".to_owned()),
    }
}

async fn request_post(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (app, origin) = match app_and_origin(&state, &uri, &headers).await {
        Ok(found) => found,
        Err(res) => return res,
    };
    let answer = answer(&state, &headers, &body, app, &origin).await;
    with_cors(answer, &origin)
}

async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    app: String,
    origin: &str,
) -> Response {
    if headers.get(PROXY_HEADER).and_then(|it| it.to_str().ok()) != Some("1") {
        let why = "Send the X-Tessera-Proxy: 1 header.";
        return refused(StatusCode::FORBIDDEN, "missing_proxy_header", why);
    }
    let asked = match parse_body(headers, body) {
        Ok(asked) => asked,
        Err(why) => return refused(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    let accounts = match signed_in(state, headers).await {
        Ok(accounts) => accounts,
        Err(err) => return err.into_response(),
    };
    let req = ProxyRequest {
        app,
        url: asked.url,
        method: asked.method.unwrap_or_else(|| "GET".to_owned()),
        headers: asked.headers.into_iter().collect(),
        body: asked.body.map(String::into_bytes).unwrap_or_default(),
        return_to: asked.return_to,
        origin: origin.to_owned(),
        authuser: asked.authuser,
    };
    let limit = Duration::from_secs(state.ctx.policy.proxy.timeout_secs);
    let run = proxy::request(&state.ctx, state.proxy_fetcher.as_ref(), &accounts, &req);
    match tokio::time::timeout(limit, run).await {
        Err(_) => render_refusal(&Refusal::Timeout),
        Ok(Err(err)) => PageError::from(err).into_response(),
        Ok(Ok(Answer::Approval { url })) => {
            json_no_store(StatusCode::OK, &json!({ "oauthApprovalUrl": url }))
        }
        Ok(Ok(Answer::Refused(refusal))) => render_refusal(&refusal),
        Ok(Ok(Answer::Resource(fetched))) => render_resource(&fetched),
    }
}

fn render_refusal(refusal: &Refusal) -> Response {
    let status = match refusal {
        Refusal::UnknownApp => StatusCode::NOT_FOUND,
        Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
        Refusal::UrlNotAllowed
        | Refusal::AddressNotAllowed
        | Refusal::ProtocolOff
        | Refusal::ConsumerUnavailable => StatusCode::FORBIDDEN,
        Refusal::Timeout => StatusCode::GATEWAY_TIMEOUT,
        Refusal::RedirectNotAllowed
        | Refusal::TooManyRedirects
        | Refusal::Unresolvable
        | Refusal::ResponseTooLarge
        | Refusal::Unreachable => StatusCode::BAD_GATEWAY,
    };
    refused(status, refusal.code(), &refusal.description())
}

/// The resource's answer: its status, the headers passed, and the body as text (or base64 when
/// it is not UTF-8).
fn render_resource(fetched: &Fetched) -> Response {
    let mut headers = Map::new();
    for (name, value) in &fetched.headers {
        headers.insert(name.clone(), Value::String(value.clone()));
    }
    let mut out = json!({ "status": fetched.status, "headers": headers });
    match std::str::from_utf8(&fetched.body) {
        Ok(text) => out["body"] = Value::String(text.to_owned()),
        Err(_) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&fetched.body);
            out["bodyBase64"] = Value::String(encoded);
        }
    }
    json_no_store(StatusCode::OK, &out)
}

/// The approval page's request, as a page error when it names no app or a foreign return.
async fn approval(state: &AppState, fields: &Fields) -> Result<Approval, PageError> {
    Ok(proxy::prepare_approval(&state.ctx, &fields.text("app"), &fields.text("return_to")).await?)
}

async fn approve_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Client(client): Client,
) -> Result<Response, PageError> {
    let fields = query(&uri)?;
    let approval = approval(&state, &fields).await?;
    let accounts = signed_in(&state, &headers).await?;
    let request = proxy::interaction(&approval, fields.get("authuser").map(str::to_owned));
    let step = interaction::start(&state.ctx, &request, &accounts, &client.ip).await?;
    render_step(&state, &headers, &approval, step, false).await
}

async fn approve_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    Form(fields): Form,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, fields.get("csrf")).await?;
    let approval = approval(&state, &fields).await?;
    let decision = consent::decision(fields.get("action"))?;
    let accounts = signed_in(&state, &headers).await?;
    let request = proxy::interaction(&approval, fields.get("authuser").map(str::to_owned));
    let step = interaction::decide(&state.ctx, &request, &accounts, decision, &client.ip).await?;
    render_step(&state, &headers, &approval, step, true).await
}

async fn render_step(
    state: &AppState,
    headers: &HeaderMap,
    approval: &Approval,
    step: interaction::Step,
    after_post: bool,
) -> Result<Response, PageError> {
    let app = approval.client.id().to_owned();
    let here = proxy::approval_url(&state.ctx, &app, &approval.return_to, None);
    let form = ConsentForm {
        action: "/proxy/approve",
        hidden: vec![("app", app), ("return_to", approval.return_to.clone())],
        compact: false,
        lang: Lang::English,
    };
    match consent::person_step(state, headers, step, &here, after_post, form)? {
        Next::Shown(response) => Ok(response),
        Next::Approved(approved) => {
            let back = proxy::approve(&state.ctx, &approved, approval).await?;
            Ok(redirect(&back, after_post))
        }
        Next::Refused => {
            let page = MessagePage {
                brand: &state.brand,
                heading: "Access denied",
                message: format!(
                    "{} was not given access to your account.",
                    approval.client.record.name
                ),
                link: approval.return_to.clone(),
                link_text: "Go back",
            };
            Ok(render::page(StatusCode::OK, &page))
        }
    }
}

/// The proxy's outgoing HTTP.
#[derive(Debug, Default, Clone, Copy)]
pub struct HttpFetcher;

/// How long connecting to one address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl HttpFetcher {
    /// The addresses `url`'s host stands for (resolved here, not by the HTTP client), and the
    /// name to pin when it is a name.
    async fn addresses(url: &url::Url) -> Result<(Vec<SocketAddr>, Option<String>), FetchError> {
        let port = url.port_or_known_default().ok_or(FetchError::Unreachable)?;
        match url.host() {
            Some(url::Host::Ipv4(ip)) => Ok((vec![SocketAddr::new(ip.into(), port)], None)),
            Some(url::Host::Ipv6(ip)) => Ok((vec![SocketAddr::new(ip.into(), port)], None)),
            Some(url::Host::Domain(name)) => {
                let found = tokio::net::lookup_host((name, port))
                    .await
                    .map_err(|_| FetchError::Unresolvable)?;
                Ok((found.collect(), Some(name.to_owned())))
            }
            None => Err(FetchError::Unreachable),
        }
    }
}

#[async_trait::async_trait]
impl Fetcher for HttpFetcher {
    async fn fetch(
        &self,
        hop: &Outgoing,
        guard: &AddressGuard,
        max_bytes: usize,
    ) -> Result<Fetched, FetchError> {
        let (addresses, name) = HttpFetcher::addresses(&hop.url).await?;
        // Every address the name stands for must be allowed: a name that mixes public and
        // private addresses is refused rather than raced.
        let Some(pinned) = addresses.first().copied() else {
            return Err(FetchError::Unresolvable);
        };
        if addresses.iter().any(|it| !guard.permits(*it)) {
            return Err(FetchError::AddressNotAllowed);
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(0)
            .user_agent("tessera-proxy");
        if let Some(name) = &name {
            builder = builder.resolve(name, pinned);
        }
        let client = builder.build().map_err(|_| FetchError::Unreachable)?;
        let method = reqwest::Method::from_bytes(hop.method.as_bytes())
            .map_err(|_| FetchError::Unreachable)?;
        let mut req = client.request(method, hop.url.clone());
        for (name, value) in &hop.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        if !hop.body.is_empty() {
            req = req.body(hop.body.clone());
        }
        let mut res = req.send().await.map_err(|err| match err.is_timeout() {
            true => FetchError::Timeout,
            false => FetchError::Unreachable,
        })?;
        if hop.method != "HEAD" && res.content_length().is_some_and(|it| it > max_bytes as u64) {
            return Err(FetchError::ResponseTooLarge);
        }
        let headers = res
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_ascii_lowercase(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        let status = res.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|_| FetchError::Unreachable)? {
            if body.len() + chunk.len() > max_bytes {
                return Err(FetchError::ResponseTooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { status, headers, body })
    }
}
