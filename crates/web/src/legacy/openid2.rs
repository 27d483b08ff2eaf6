//! OpenID 2.0 over HTTP: discovery (`/accounts/o8/id`, a person's identifier, `user-xrds`,
//! a hosted domain's `site-xrds` and `host-meta`), the OP endpoint `/accounts/o8/ud` (and
//! `/a/<domain>/o8/ud`) for direct requests (`associate`, `check_authentication`: Key-Value
//! answers) and browser requests (`checkid_*`: sign-in and the one consent page through the
//! interaction flow, then a redirect to `return_to`), and the consent page's answer.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tessera_domain::interaction::{self, Step};
use tessera_domain::openid2::{self, Endpoint, Prepared, Refused};
use tessera_proto_openid2::{Message, query_pairs};

use super::{deprecation, text};
use crate::error::PageError;
use crate::forms::Form;
use crate::pages::consent::{self, ConsentForm, Next};
use crate::pages::lang::Lang;
use crate::pages::{Client, check_csrf, redirect, signed_in};
use crate::{AppState, render};
use tessera_domain::credentials::Protocol;
use tessera_domain::legacy::{self, Verdict};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/accounts/o8/id", get(identifier_get))
        .route("/accounts/o8/ud", get(endpoint_get).post(endpoint_post))
        .route("/accounts/o8/approve", post(approve_post))
        .route("/accounts/o8/user-xrds", get(user_xrds_get))
        .route("/accounts/o8/site-xrds", get(site_xrds_get))
        .route("/accounts/o8/.well-known/host-meta", get(host_meta_get))
        .route("/a/{domain}/o8/id", get(domain_identifier_get))
        .route("/a/{domain}/o8/ud", get(domain_endpoint_get).post(domain_endpoint_post))
}

/// Browser requests longer than this go back by a self-submitting form rather than a redirect.
const MAX_REDIRECT: usize = 2047;

/// The page submits itself; its one inline script is allowed by hash, nothing else.
const FORM_POST_CSP: &str = "default-src 'none'; style-src 'self'; script-src 'sha256-8lDeP0UDwCO6/RhblgeH/ctdBzjVpJxrXizsnIk3cEQ='; base-uri 'none'; frame-ancestors 'none'";

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostPage<'a> {
    brand: &'a str,
    action: String,
    fields: Vec<(String, String)>,
}

fn xrds(body: String, location: Option<String>) -> Response {
    let mut res = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/xrds+xml"))],
        body,
    )
        .into_response();
    if let Some(location) = location.and_then(|it| HeaderValue::from_str(&it).ok()) {
        res.headers_mut().insert("x-xrds-location", location);
    }
    res
}

fn query_of(uri: &http::Uri) -> &str {
    uri.query().unwrap_or_default()
}

fn param(uri: &http::Uri, name: &str) -> Option<String> {
    query_pairs(query_of(uri)).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The OP identifier's XRDS, or with `?id=` a person's identifier's.
async fn identifier_get(State(state): State<AppState>, OriginalUri(uri): OriginalUri) -> Response {
    identifier(Endpoint::main(&state.ctx), &uri)
}

/// `X-XRDS-Location` names the document's own address, for clients that look for the header.
fn identifier(endpoint: Endpoint, uri: &http::Uri) -> Response {
    match param(uri, "id") {
        Some(_) => xrds(endpoint.claimed_id_xrds(), None),
        None => {
            let base = endpoint.id_base.trim_end_matches("?id=").to_owned();
            xrds(endpoint.op_xrds(), Some(base))
        }
    }
}

async fn domain_identifier_get(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let endpoint =
        Endpoint::for_domain(&state.ctx, &domain).await?.ok_or_else(PageError::not_found)?;
    Ok(identifier(endpoint, &uri))
}

async fn user_xrds_get(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let claimed = param(&uri, "uri").ok_or_else(PageError::not_found)?;
    let endpoint =
        Endpoint::of_identifier(&state.ctx, &claimed).await?.ok_or_else(PageError::not_found)?;
    Ok(xrds(endpoint.claimed_id_xrds(), None))
}

async fn site_xrds_get(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let hd = param(&uri, "hd").ok_or_else(PageError::not_found)?;
    let (site, _) =
        openid2::site_discovery(&state.ctx, &hd).await?.ok_or_else(PageError::not_found)?;
    Ok(xrds(site, None))
}

async fn host_meta_get(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let hd = param(&uri, "hd").ok_or_else(PageError::not_found)?;
    let (_, meta) =
        openid2::site_discovery(&state.ctx, &hd).await?.ok_or_else(PageError::not_found)?;
    Ok(text(StatusCode::OK, None, meta))
}

async fn endpoint_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Client(client): Client,
) -> Result<Response, PageError> {
    let endpoint = Endpoint::main(&state.ctx);
    serve(&state, &headers, endpoint, query_of(&uri).to_owned(), &client.ip).await
}

async fn endpoint_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    body: Bytes,
) -> Result<Response, PageError> {
    let endpoint = Endpoint::main(&state.ctx);
    let body = String::from_utf8_lossy(&body).into_owned();
    serve(&state, &headers, endpoint, body, &client.ip).await
}

async fn domain_endpoint_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
    OriginalUri(uri): OriginalUri,
    Client(client): Client,
) -> Result<Response, PageError> {
    let endpoint =
        Endpoint::for_domain(&state.ctx, &domain).await?.ok_or_else(PageError::not_found)?;
    serve(&state, &headers, endpoint, query_of(&uri).to_owned(), &client.ip).await
}

async fn domain_endpoint_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
    Client(client): Client,
    body: Bytes,
) -> Result<Response, PageError> {
    let endpoint =
        Endpoint::for_domain(&state.ctx, &domain).await?.ok_or_else(PageError::not_found)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    serve(&state, &headers, endpoint, body, &client.ip).await
}

fn direct_response(answer: openid2::Direct) -> Response {
    let status = if answer.ok { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    text(status, None, answer.body)
}

/// The OP endpoint: the message's mode says whether this is a direct request (Key-Value answer)
/// or a browser request.
async fn serve(
    state: &AppState,
    headers: &HeaderMap,
    endpoint: Endpoint,
    raw: String,
    ip: &str,
) -> Result<Response, PageError> {
    let message = match Message::from_pairs(&query_pairs(&raw)) {
        Ok(message) => message,
        Err(err) => return Ok(direct_response(direct_refusal(&err.to_string()))),
    };
    match message.get("mode") {
        Some("checkid_setup" | "checkid_immediate") => {}
        _ => {
            let https = state.ctx.public_url.starts_with("https://");
            return Ok(direct_response(openid2::direct(&state.ctx, &message, https).await?));
        }
    }
    let authuser = query_pairs(&raw).into_iter().find(|(k, _)| k == "authuser").map(|(_, v)| v);
    let prepared = match openid2::prepare(&state.ctx, endpoint, &message).await? {
        Ok(prepared) => prepared,
        Err(refused) => return refusal(refused),
    };
    // The deprecation switch for this relying party (its realm).
    let verdict =
        legacy::gate(&state.ctx, Protocol::OpenId2, Some(prepared.realm.as_str())).await?;
    if let Verdict::Refused(notice) = &verdict {
        let refused = openid2::deprecated(&prepared, &notice.link);
        return Ok(deprecation::answer(&verdict, refusal(refused)?));
    }
    let accounts = signed_in(state, headers).await?;
    let request = openid2::interaction(&prepared, authuser);
    let step = interaction::start(&state.ctx, &request, &accounts, ip).await?;
    let query = openid_query(&message);
    let res = render(state, headers, &prepared, &query, step, false, Lang::of(&request.asks));
    Ok(deprecation::answer(&verdict, res.await?))
}

fn direct_refusal(text: &str) -> openid2::Direct {
    openid2::Direct { ok: false, body: tessera_proto_openid2::direct_error_body(text, &[]) }
}

fn refusal(refused: Refused) -> Result<Response, PageError> {
    match refused {
        Refused::Page(text) => Err(PageError::bad_request(&format!(
            "The site that sent you here made a request that cannot be answered: {text}"
        ))),
        Refused::Indirect(url) => Ok(redirect(&url, false)),
    }
}

/// The message's `openid.*` fields, form-encoded again (what the consent page carries back and
/// the sign-in pages return to).
fn openid_query(message: &Message) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in message.iter() {
        out.append_pair(&format!("openid.{key}"), value);
    }
    out.finish()
}

/// The consent page's answer.
async fn approve_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    Form(fields): Form,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, fields.get("csrf")).await?;
    let decision = consent::decision(fields.get("action"))?;
    let endpoint = match fields.get("hd").filter(|it| !it.is_empty()) {
        Some(domain) => {
            Endpoint::for_domain(&state.ctx, domain).await?.ok_or_else(PageError::not_found)?
        }
        None => Endpoint::main(&state.ctx),
    };
    let query = fields.get("query").unwrap_or_default();
    let message = Message::from_pairs(&query_pairs(query))
        .map_err(|err| PageError::bad_request(&err.to_string()))?;
    let prepared = match openid2::prepare(&state.ctx, endpoint, &message).await? {
        Ok(prepared) => prepared,
        Err(refused) => return refusal(refused),
    };
    let accounts = signed_in(&state, &headers).await?;
    let request = openid2::interaction(&prepared, fields.get("authuser").map(str::to_owned));
    let step = interaction::decide(&state.ctx, &request, &accounts, decision, &client.ip).await?;
    render(&state, &headers, &prepared, query, step, true, Lang::of(&request.asks)).await
}

/// Sends the browser to the relying party: a redirect, or a self-submitting form when the URL
/// would be too long.
fn to_relying_party(state: &AppState, url: &str, after_post: bool) -> Response {
    if url.len() <= MAX_REDIRECT {
        return redirect(url, after_post);
    }
    let (action, query) = url.split_once('?').unwrap_or((url, ""));
    let page =
        FormPostPage { brand: &state.brand, action: action.to_owned(), fields: query_pairs(query) };
    let mut res = render::page(StatusCode::OK, &page);
    res.headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(FORM_POST_CSP));
    res
}

/// OpenID's rendering of a step of the interaction flow.
async fn render(
    state: &AppState,
    headers: &HeaderMap,
    prepared: &Prepared,
    query: &str,
    step: Step,
    after_post: bool,
    lang: Lang,
) -> Result<Response, PageError> {
    let op = &prepared.endpoint.op_endpoint;
    let joiner = if op.contains('?') { '&' } else { '?' };
    let here = format!("{op}{joiner}{query}");
    let form = ConsentForm {
        action: "/accounts/o8/approve",
        hidden: vec![
            ("hd", prepared.endpoint.hd.clone().unwrap_or_default()),
            ("query", query.to_owned()),
        ],
        compact: false,
        lang,
    };
    match consent::person_step(state, headers, step, &here, after_post, form)? {
        Next::Shown(response) => Ok(response),
        Next::Approved(approved) => {
            let url = openid2::assert(&state.ctx, &approved, prepared).await?;
            Ok(to_relying_party(state, &url, after_post))
        }
        Next::Refused => Ok(redirect(&openid2::negative(prepared), after_post)),
    }
}
