//! Liveness, readiness and Prometheus metrics.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};

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

async fn metrics_get(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "metrics are off\n").into_response(),
    }
}
