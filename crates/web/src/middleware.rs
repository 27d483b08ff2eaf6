//! Layers around every request: request ids, one log line and metrics per request, security headers.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// The request id header; an incoming one is kept if it looks sane, else a new one is made.
pub(crate) const REQUEST_ID: &str = "x-request-id";

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Logs one line per request (route template, never the query string, which may carry tokens) and
/// records request counts and latency by route and status.
pub(crate) async fn observe(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = match req.headers().get(REQUEST_ID).and_then(|it| it.to_str().ok()) {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            id.to_owned()
        }
        _ => format!(
            "{:x}-{:x}",
            std::process::id(),
            NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert(REQUEST_ID, value);
    }
    let matched = req.extensions().get::<MatchedPath>().map(|it| it.as_str().to_owned());
    // Metrics keep the one label `unmatched`; the log line says which path it was.
    let path = matched.is_none().then(|| unmatched_path(req.uri()));
    let route = matched.unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let mut res = next.run(req).await;
    let elapsed = started.elapsed();
    let status = res.status().as_u16().to_string();
    metrics::counter!("tessera_http_requests_total", "route" => route.clone(), "status" => status.clone()).increment(1);
    metrics::histogram!("tessera_http_request_duration_seconds", "route" => route.clone())
        .record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    let micros = elapsed.as_micros() as u64;
    if res.status().is_server_error() {
        let detail = res
            .extensions()
            .get::<crate::error::Internal>()
            .map(|it| it.0.clone())
            .unwrap_or_default();
        tracing::error!(target: "tessera::http", %method, route, path = path.as_deref(), status, micros, request_id, detail, "request failed");
    } else {
        tracing::info!(target: "tessera::http", %method, route, path = path.as_deref(), status, micros, request_id, "request");
    }
    res
}

/// The most bytes of an unmatched request's path that its log line carries.
const LOGGED_PATH_MAX: usize = 200;

/// What the log line of a request that matched no route says about its target: the path as sent
/// (percent-encoded, so no control characters), never the query string, which may hold tokens,
/// cut after [`LOGGED_PATH_MAX`] bytes.
fn unmatched_path(uri: &http::Uri) -> String {
    let path = uri.path();
    if path.len() <= LOGGED_PATH_MAX {
        return path.to_owned();
    }
    let mut end = LOGGED_PATH_MAX;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

/// Answers 503 when the handler (reading the body included) has not answered within `limit`, so a
/// slow request body or a stuck handler cannot hold a connection and its worker for ever.
pub(crate) async fn request_timeout(
    State(limit): State<Duration>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            let mut res =
                (StatusCode::SERVICE_UNAVAILABLE, "the request took too long\n").into_response();
            res.extensions_mut().insert(crate::error::Internal(format!(
                "no answer within the request timeout ({} ms)",
                limit.as_millis()
            )));
            res
        }
    }
}

/// Headers for every response: no framing, no sniffing, no referrer (pages may carry tokens), and a
/// strict content security policy for HTML.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|it| it.to_str().ok())
        .is_some_and(|it| it.starts_with("text/html"));
    if is_html {
        headers.entry(header::CONTENT_SECURITY_POLICY).or_insert(
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
            ),
        );
        headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    }
    res
}

/// A panic in a handler becomes a plain 500 without details (and is a bug to fix).
pub(crate) fn panic_response(_err: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!(target: "tessera::http", "handler panicked");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmatched_paths_are_logged_without_query_and_capped() {
        let uri: http::Uri = "/no/such/page?access_token=secret&x=1".parse().unwrap();
        assert_eq!(unmatched_path(&uri), "/no/such/page");
        let uri: http::Uri = "http://tessera.test/wp-login.php?pwd=secret".parse().unwrap();
        assert_eq!(unmatched_path(&uri), "/wp-login.php");
        let uri: http::Uri = "/caf%C3%A9/%0d%0aInjected: 1".replace(' ', "%20").parse().unwrap();
        assert_eq!(unmatched_path(&uri), "/caf%C3%A9/%0d%0aInjected:%201");
        let long = format!("/{}", "a".repeat(500));
        let uri: http::Uri = format!("{long}?q=1").parse().unwrap();
        let logged = unmatched_path(&uri);
        assert_eq!(logged, format!("{}…", &long[..LOGGED_PATH_MAX]));
    }
}
