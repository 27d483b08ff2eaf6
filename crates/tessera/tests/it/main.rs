//! The integration tests: real servers started in-process on 127.0.0.1:0 with a fixed clock.

#![allow(clippy::unwrap_used)]

mod support;

mod account;
mod architecture;
#[cfg(feature = "browser")]
mod browser;
mod captcha;
mod cli;
mod cluster;
mod core;
mod device;
#[cfg(unix)]
mod durability;
mod feeds;
mod hardening;
mod interaction;
mod interop;
mod legacy;
mod migration;
mod oauth1;
mod oauth2;
mod openid2;
mod ops;
#[cfg(feature = "browser")]
mod playground;
mod proxy;
mod push;
mod push_delivery;
mod push_demo;
mod push_interop;
mod push_keys;
mod push_limits;
mod push_matrix;
mod push_sender;
mod push_topics;
mod robustness;
mod signin;
mod sso;
