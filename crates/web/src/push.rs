//! Push messaging over HTTP: device registration (`/c2dm/register3`), C2DM send (`/c2dm/send`),
//! GCM send (`/gcm/send`, JSON or plain text, to ids or a topic) and topic subscriptions in the
//! Instance ID API's form (`/iid/v1/<id>/rel/topics/<name>`, `/iid/v1:batchAdd`,
//! `/iid/v1:batchRemove`). Handlers extract, call `domain::push` and render the bodies
//! `proto-push` writes.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tessera_domain::caller::Presented;
use tessera_domain::credentials::Recurrence;
use tessera_domain::push::topics::{self, TopicError};
use tessera_domain::push::{self, Api};
use tessera_proto_push::{self as wire, Target};

use crate::AppState;
use crate::error::PageError;
use crate::pages::Client;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/c2dm/register3",
            post(
                |State(state): State<AppState>,
                 client: Client,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    or_unavailable(&state, register(&state, &client, &headers, &body).await)
                },
            ),
        )
        .route(
            "/c2dm/send",
            post(|State(state): State<AppState>, headers: HeaderMap, body: Bytes| async move {
                or_unavailable(&state, c2dm_send(&state, &headers, &body).await)
            }),
        )
        .route(
            "/iid/v1/{registration_id}/rel/topics/{topic}",
            post(
                |State(state): State<AppState>,
                 Path((id, topic)): Path<(String, String)>,
                 headers: HeaderMap| async move {
                    or_unavailable(&state, iid_add(&state, &id, &topic, &headers).await)
                },
            ),
        )
}

/// The largest request body of the bulk endpoints: a GCM JSON send to 1000 registration ids
/// (about 73 KiB of ids, plus a payload of up to 4096 bytes that JSON escaping may make six times
/// longer) or a batch subscription of 1000 ids. Every other endpoint keeps the server's 64 KiB.
pub(crate) const BULK_BODY_LIMIT: usize = 128 * 1024;

/// The endpoints that name up to 1000 registration ids in one body: `/gcm/send` and the Instance
/// ID batches. The caller gives them [`BULK_BODY_LIMIT`].
pub(crate) fn bulk_router() -> Router<AppState> {
    Router::new()
        .route(
            "/gcm/send",
            post(|State(state): State<AppState>, headers: HeaderMap, body: Bytes| async move {
                or_unavailable(&state, gcm_send(&state, &headers, &body).await)
            }),
        )
        .route(
            "/iid/v1:batchAdd",
            post(|State(state): State<AppState>, headers: HeaderMap, body: Bytes| async move {
                or_unavailable(&state, iid_batch(&state, &headers, &body, true).await)
            }),
        )
        .route(
            "/iid/v1:batchRemove",
            post(|State(state): State<AppState>, headers: HeaderMap, body: Bytes| async move {
                or_unavailable(&state, iid_batch(&state, &headers, &body, false).await)
            }),
        )
}

/// A push endpoint's failure on our side (the store failed or is overloaded) is a 503 with a
/// numeric `Retry-After` (seconds) and an empty body, which every sender library backs off on;
/// the detail stays attached for the log. Other errors are answered as they are.
fn or_unavailable(state: &AppState, res: Result<Response, PageError>) -> Response {
    let res = match res {
        Ok(res) => return res,
        Err(err) => err.into_response(),
    };
    if res.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return res;
    }
    let (mut parts, _) = res.into_parts();
    parts.status = StatusCode::SERVICE_UNAVAILABLE;
    parts.headers.clear();
    parts
        .headers
        .insert(header::RETRY_AFTER, HeaderValue::from(state.ctx.policy.push.retry_after_secs));
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=UTF-8"));
    parts.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Response::from_parts(parts, axum::body::Body::empty())
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=UTF-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

fn json(body: String) -> Response {
    json_status(StatusCode::OK, body)
}

fn json_status(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=UTF-8"))],
        wire::UNAUTHORIZED_BODY,
    )
        .into_response()
}

/// The response header that hands a device without an account its install credential, once.
pub(crate) const INSTALL_CREDENTIAL_HEADER: &str = "x-install-credential";

async fn register(
    state: &AppState,
    client: &Client,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, PageError> {
    let ctx = &state.ctx;
    let pairs = wire::urlencoded_pairs(body);
    let refused = || {
        let code = wire::RegisterError::AuthenticationFailed;
        text(StatusCode::OK, wire::register_error_body(code))
    };
    if let Some(change) = wire::parse_topic_change(&pairs) {
        let change = match change {
            Ok(change) => change,
            Err(code) => return Ok(text(StatusCode::OK, wire::register_error_body(code))),
        };
        // Only a device with a credential has registrations to subscribe.
        let Some(device) = device(state, headers, &change.device).await? else {
            return Ok(refused());
        };
        return Ok(match topics::change_from_device(ctx, &device, &change).await? {
            Ok(()) => text(StatusCode::OK, wire::register_body(&change.registration_id)),
            Err(code) => text(StatusCode::OK, wire::register_error_body(code)),
        });
    }
    let request = match wire::parse_register(&pairs) {
        Ok(request) => request,
        Err(code) => return Ok(text(StatusCode::OK, wire::register_error_body(code))),
    };
    let presented = crate::caller::presented(headers);
    let secret = match (&presented, crate::caller::authorization(headers)) {
        (None, None) => None,
        (Some(Presented::AidLogin { device, secret }), _) if *device == request.device => {
            Some(secret.as_str()).filter(|it| !it.is_empty())
        }
        _ => return Ok(refused()),
    };
    let Some(secret) = secret else {
        // A device without a credential: its first registration hands it one, within the
        // per-address limit.
        if !push::new_install_allowed(ctx, &client.0.ip).await? {
            let code = wire::RegisterError::QuotaExceeded;
            let mut response = text(StatusCode::OK, wire::register_error_body(code));
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(push::NEW_INSTALL_WINDOW_SECS));
            return Ok(response);
        }
        return Ok(match push::register_new_install(ctx, &request).await? {
            Ok((id, credential)) => {
                let mut response = text(StatusCode::OK, wire::register_body(&id));
                if let Ok(value) = HeaderValue::from_str(&credential) {
                    response.headers_mut().insert(INSTALL_CREDENTIAL_HEADER, value);
                }
                response
            }
            Err(code) => text(StatusCode::OK, wire::register_error_body(code)),
        });
    };
    let Some(device) =
        push::authenticate_device(ctx, &request.device, secret, Recurrence::Often).await?
    else {
        return Ok(refused());
    };
    Ok(match push::register(ctx, &device, &request).await? {
        Ok(_) if request.delete => text(StatusCode::OK, wire::unregister_body(&request.app)),
        Ok(id) => text(StatusCode::OK, wire::register_body(&id)),
        Err(code) => text(StatusCode::OK, wire::register_error_body(code)),
    })
}

/// The device a `register3` request proves itself as (`AidLogin <device id>:<credential>`, the id
/// the one in the form), or `None` for no, another or a refused credential.
async fn device(
    state: &AppState,
    headers: &HeaderMap,
    device_id: &str,
) -> Result<Option<push::Device>, PageError> {
    match crate::caller::presented(headers) {
        Some(Presented::AidLogin { device, secret })
            if device == device_id && !secret.is_empty() =>
        {
            Ok(push::authenticate_device(&state.ctx, device_id, &secret, Recurrence::Often).await?)
        }
        _ => Ok(None),
    }
}

async fn sender(
    state: &AppState,
    api: Api,
    headers: &HeaderMap,
) -> Result<Option<push::Sender>, PageError> {
    let Some(presented) = crate::caller::presented(headers) else { return Ok(None) };
    Ok(push::authenticate_sender(&state.ctx, api, &presented).await?)
}

async fn c2dm_send(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, PageError> {
    let Some(sender) = sender(state, Api::C2dm, headers).await? else {
        return Ok(unauthorized());
    };
    let (id, message) = match wire::parse_c2dm_send(&wire::urlencoded_pairs(body)) {
        Ok(parsed) => parsed,
        Err(Ok(code)) => {
            return Ok(text(StatusCode::OK, wire::c2dm_body(&wire::Outcome::Failed(code))));
        }
        Err(Err(bad)) => return Ok(text(StatusCode::BAD_REQUEST, bad.body())),
    };
    let outcomes = push::send(&state.ctx, &sender, &[id], &message, None).await?;
    let outcome = outcomes
        .into_iter()
        .next()
        .unwrap_or(wire::Outcome::Failed(wire::SendError::InternalServerError));
    Ok(text(StatusCode::OK, wire::c2dm_body(&outcome)))
}

async fn gcm_send(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, PageError> {
    let Some(sender) = sender(state, Api::Gcm, headers).await? else {
        return Ok(unauthorized());
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|it| it.to_str().ok())
        .is_some_and(|it| it.trim_start().to_ascii_lowercase().starts_with("application/json"));
    let parsed = if is_json {
        wire::parse_gcm_json(body)
    } else {
        wire::parse_gcm_form(&wire::urlencoded_pairs(body))
    };
    let send = match parsed {
        Ok(send) => send,
        Err(bad) => return Ok(text(StatusCode::BAD_REQUEST, bad.body())),
    };
    let ids = match send.target {
        Target::Registrations(ids) => ids,
        Target::Topic(topic) => {
            let outcome =
                topics::send(&state.ctx, &sender, &topic, &send.message, send.problem).await?;
            return Ok(json(wire::gcm_topic_body(&outcome)));
        }
    };
    if !is_json && ids.is_empty() {
        let outcome =
            wire::Outcome::Failed(send.problem.unwrap_or(wire::SendError::MissingRegistration));
        return Ok(text(StatusCode::OK, wire::gcm_text_body(&outcome)));
    }
    let outcomes = push::send(&state.ctx, &sender, &ids, &send.message, send.problem).await?;
    if is_json {
        Ok(json(wire::gcm_json_body(push::multicast_id(&state.ctx), &outcomes)))
    } else {
        let outcome = outcomes
            .into_iter()
            .next()
            .unwrap_or(wire::Outcome::Failed(wire::SendError::InternalServerError));
        Ok(text(StatusCode::OK, wire::gcm_text_body(&outcome)))
    }
}

/// An Instance ID error answer: `{"error":"<CODE>"}`.
fn iid_error(status: StatusCode, code: &str) -> Response {
    json_status(status, serde_json::json!({ "error": code }).to_string())
}

/// `POST /iid/v1/<registration id>/rel/topics/<name>`: subscribes one registration id. 200 `{}`;
/// 400 `INVALID_ARGUMENT` for a bad topic name, 404 `NOT_FOUND` for an id the sender cannot
/// send to, 400 `TOO_MANY_TOPICS` at the per-registration cap.
async fn iid_add(
    state: &AppState,
    registration_id: &str,
    topic: &str,
    headers: &HeaderMap,
) -> Result<Response, PageError> {
    let Some(sender) = sender(state, Api::Gcm, headers).await? else {
        return Ok(unauthorized());
    };
    Ok(match topics::subscribe(&state.ctx, &sender, registration_id, topic).await? {
        Ok(()) => json("{}".to_owned()),
        Err(TopicError::NotFound) => {
            iid_error(StatusCode::NOT_FOUND, TopicError::NotFound.as_str())
        }
        Err(code) => iid_error(StatusCode::BAD_REQUEST, code.as_str()),
    })
}

/// `POST /iid/v1:batchAdd` (`add`) and `/iid/v1:batchRemove`: one result per id in request
/// order, `{}` or `{"error":"<CODE>"}`.
async fn iid_batch(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    add: bool,
) -> Result<Response, PageError> {
    let Some(sender) = sender(state, Api::Gcm, headers).await? else {
        return Ok(unauthorized());
    };
    let Some((topic, ids)) = wire::frames::parse_iid_batch(body) else {
        return Ok(iid_error(StatusCode::BAD_REQUEST, TopicError::InvalidArgument.as_str()));
    };
    if !wire::valid_topic(&topic) {
        return Ok(iid_error(StatusCode::BAD_REQUEST, TopicError::InvalidArgument.as_str()));
    }
    let mut results = Vec::with_capacity(ids.len());
    for id in &ids {
        let outcome = if add {
            topics::subscribe(&state.ctx, &sender, id, &topic).await?
        } else {
            topics::unsubscribe(&state.ctx, &sender, id, &topic).await?
        };
        results.push(match outcome {
            Ok(()) => serde_json::json!({}),
            Err(code) => serde_json::json!({ "error": code.as_str() }),
        });
    }
    Ok(json(serde_json::json!({ "results": results }).to_string()))
}
