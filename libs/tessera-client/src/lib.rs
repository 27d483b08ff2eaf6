//! Client library for the tessera accounts service: ID tokens, OAuth 2.0, AuthSub, ClientLogin, a push sender and a resource-server layer.
#![doc = include_str!("lib.md")]
#![deny(missing_docs)]

pub mod authsub;
pub mod caller_check;
pub mod client_login;
mod clock;
pub mod deprecation;
pub mod discovery;
pub mod dpop;
pub mod id_token;
pub mod layer;
pub mod oauth1;
pub mod oauth2;
pub mod proxy;
#[cfg(feature = "push")]
pub mod push;
pub mod push_sender;
mod secret;
pub mod service_account;
pub mod sso;

pub use clock::{Clock, ManualClock, SystemClock};
pub use secret::Secret;

/// The HTTP client used unless the caller supplies one: bounded connect and request times, so that
/// an unresponsive server cannot stall a verification or login forever.
fn default_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .unwrap_or_default()
}
