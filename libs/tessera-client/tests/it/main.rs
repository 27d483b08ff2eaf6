//! Integration tests for tessera-client against in-process axum mock servers on 127.0.0.1:0.
#![allow(clippy::unwrap_used)]

mod authsub;
mod client_login;
mod id_token;
mod layer;
mod oauth2;
mod support;
