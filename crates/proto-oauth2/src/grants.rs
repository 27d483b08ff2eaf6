//! One module per grant type: its parameters, parsed into a typed request.

pub mod authorization_code;
pub mod client_credentials;
pub mod device_code;
pub mod jwt_bearer;
pub mod migration;
pub mod refresh_token;
pub mod token_exchange;
