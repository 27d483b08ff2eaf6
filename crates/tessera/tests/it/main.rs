//! The integration tests: real servers started in-process on 127.0.0.1:0 with a fixed clock.

#![allow(clippy::unwrap_used)]

mod support;

mod account;
#[cfg(feature = "browser")]
mod browser;
mod cli;
mod cluster;
mod core;
#[cfg(unix)]
mod durability;
mod interop;
mod legacy;
mod oauth2;
mod robustness;
mod signin;
