//! HTTP for tessera: the axum router, the people-facing pages, health and metrics, and the layers
//! every request passes (request id, metrics, security headers, body limits).
//!
//! Handlers extract, call the domain, and render; they make no decisions of their own.

mod caller;
mod cookies;
mod error;
mod forms;
mod health;
mod legacy;
mod middleware;
mod oauth2;
mod pages;
mod playground;
mod proxy;
mod push;
mod push_delivery;
mod render;
mod serve;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
pub use health::MetricsAccess;
pub use legacy::Legacy;
use metrics_exporter_prometheus::PrometheusHandle;
pub use pages::assets::STYLESHEET;
pub use proxy::{HttpFetcher, PROXY_HEADER};
pub use push_delivery::tick_connections;
pub use serve::{ConnLimits, serve};
use tessera_domain::Ctx;

/// What every handler can reach: one shared [`Shared`], so that the clone axum makes for every
/// request is one reference count, not one per field of the context.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The fields of [`AppState`], read through it. Set them before the router is built: a change
/// made later through `AppState` applies to that copy only.
#[derive(Clone)]
pub struct Shared {
    pub ctx: Ctx,
    pub metrics: Option<PrometheusHandle>,
    /// Cookies get `Secure` when the public URL is https.
    pub secure_cookies: bool,
    /// Product name shown on pages and in authenticator apps.
    pub brand: Arc<str>,
    /// URL prefixes outside this origin that `continue` may point to.
    pub continue_prefixes: Arc<[String]>,
    /// Which legacy protocols (AuthSub, ClientLogin) this deployment serves.
    pub legacy: Legacy,
    /// How long a request may take, reading its body included, before it is answered 503.
    pub request_timeout: Duration,
    /// Who may read `/metrics` through this state's router.
    pub metrics_access: MetricsAccess,
    /// The front-end token proxy's outgoing HTTP ([`HttpFetcher`]).
    pub proxy_fetcher: Arc<dyn tessera_domain::proxy::Fetcher>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }
}

impl AppState {
    pub fn new(ctx: Ctx, metrics: Option<PrometheusHandle>) -> AppState {
        let secure_cookies = ctx.public_url.starts_with("https://");
        AppState(Arc::new(Shared {
            ctx,
            metrics,
            secure_cookies,
            brand: "tessera".into(),
            continue_prefixes: Arc::from(Vec::new()),
            legacy: Legacy::default(),
            request_timeout: Duration::from_secs(30),
            metrics_access: MetricsAccess::Off,
            proxy_fetcher: Arc::new(HttpFetcher),
        }))
    }
}

/// `/metrics` alone, for a listener of its own (with the request timeout, security headers and
/// panic catcher of the main router, but no request log: scrapes would fill it).
pub fn metrics_router(state: AppState) -> Router {
    health::metrics_router()
        .layer(axum::middleware::from_fn_with_state(
            state.request_timeout,
            middleware::request_timeout,
        ))
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(middleware::panic_response))
        .with_state(state)
}

/// The largest request body of every endpoint but the push bulk ones ([`push::BULK_BODY_LIMIT`]).
const BODY_LIMIT: usize = 64 * 1024;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let bodies_up_to_64k = Router::new()
        .merge(health::router())
        .merge(pages::router())
        .merge(playground::router())
        .merge(oauth2::router())
        .merge(legacy::router(state.legacy))
        .merge(push::router())
        .merge(push_delivery::router())
        .merge(proxy::router())
        .fallback(error::not_found)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT));
    let bulk = push::bulk_router()
        .layer(tower_http::limit::RequestBodyLimitLayer::new(push::BULK_BODY_LIMIT));
    Router::new()
        .merge(bodies_up_to_64k)
        .merge(bulk)
        .layer(axum::middleware::from_fn_with_state(
            state.request_timeout,
            middleware::request_timeout,
        ))
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(axum::middleware::from_fn(middleware::observe))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(middleware::panic_response))
        .with_state(state)
}
