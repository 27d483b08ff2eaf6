//! Liveness, readiness and Prometheus metrics.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode, header};

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz_get))
        .route("/readyz", get(readyz_get))
        .route("/metrics", get(metrics_get))
}

async fn healthz_get() -> &'static str {
    "ok\n"
}

/// Ready when the store answers and can write: a node whose database is full or read-only would
/// otherwise stay in the load balancer while every sign-in fails.
async fn readyz_get(State(state): State<AppState>) -> Response {
    if let Err(err) = state.ctx.store.ping().await {
        tracing::warn!(target: "tessera::http", error = %err, "store not reachable");
        return (StatusCode::SERVICE_UNAVAILABLE, "store unreachable\n").into_response();
    }
    if let Err(err) = state.ctx.store.heartbeat(state.ctx.now()).await {
        tracing::warn!(target: "tessera::http", error = %err, "store cannot write");
        return (StatusCode::SERVICE_UNAVAILABLE, "store cannot write\n").into_response();
    }
    (StatusCode::OK, "ready\n").into_response()
}

/// Who may read `/metrics` on one listener.
#[derive(Debug, Clone, Default)]
pub enum MetricsAccess {
    /// Not served on this listener: 404, as for any unknown path.
    #[default]
    Off,
    /// Anyone who reaches the listener (a listener of its own, on a private address).
    Open,
    /// Requests carrying `Authorization: Bearer <token>`.
    Token(Arc<str>),
}

pub(crate) fn metrics_router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics_get))
}

async fn metrics_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match &state.metrics_access {
        MetricsAccess::Off => return crate::error::PageError::not_found().into_response(),
        MetricsAccess::Open => (),
        MetricsAccess::Token(token) => {
            if !bearer_matches(&headers, token) {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\"")],
                    "a bearer token is required\n",
                )
                    .into_response();
            }
        }
    }
    match &state.metrics {
        Some(handle) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "metrics are off\n").into_response(),
    }
}

/// Whether the request carries `Authorization: Bearer <token>`, compared in constant time (over
/// digests, so that not even the length is compared early).
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(tessera_domain::caller::Presented::Bearer(given)) = crate::caller::presented(headers)
    else {
        return false;
    };
    let given = tessera_crypto::digest::sha256(given.as_bytes());
    let expected = tessera_crypto::digest::sha256(token.as_bytes());
    tessera_crypto::digest::ct_eq(&given, &expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_match_exactly() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        let token = "metrics-token-0123456789";
        assert!(bearer_matches(&with("Bearer metrics-token-0123456789"), token));
        assert!(bearer_matches(&with("bearer metrics-token-0123456789"), token));
        assert!(!bearer_matches(&with("Bearer metrics-token-012345678"), token));
        assert!(!bearer_matches(&with("Bearer metrics-token-01234567890"), token));
        assert!(!bearer_matches(&with("Basic metrics-token-0123456789"), token));
        assert!(!bearer_matches(&with("metrics-token-0123456789"), token));
        assert!(!bearer_matches(&HeaderMap::new(), token));
    }
}
