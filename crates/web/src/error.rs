//! The one place where errors become responses: an HTML page with a clear message, the right
//! status, and internal details kept for the log only.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::render;

/// Internal detail attached to a 5xx response for the logging layer; never sent.
#[derive(Debug, Clone)]
pub(crate) struct Internal(pub(crate) String);

#[derive(Debug)]
pub(crate) struct PageError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    internal: Option<String>,
}

impl PageError {
    pub(crate) fn bad_request(message: &str) -> PageError {
        PageError { status: StatusCode::BAD_REQUEST, message: message.to_owned(), internal: None }
    }

    pub(crate) fn not_found() -> PageError {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: "There is nothing at this address.".to_owned(),
            internal: None,
        }
    }

    pub(crate) fn forbidden(message: &str) -> PageError {
        PageError { status: StatusCode::FORBIDDEN, message: message.to_owned(), internal: None }
    }
}

impl From<tessera_domain::Error> for PageError {
    fn from(err: tessera_domain::Error) -> PageError {
        use tessera_domain::Error;
        match err {
            Error::Invalid(message) | Error::Conflict(message) => {
                PageError { status: StatusCode::BAD_REQUEST, message, internal: None }
            }
            Error::NotFound => PageError::not_found(),
            Error::Forbidden => PageError::forbidden("You are not allowed to do that."),
            Error::Internal(detail) => PageError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "Something went wrong on our side. Try again in a moment.".to_owned(),
                internal: Some(detail),
            },
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let mut res = render::error_page(self.status, &self.message);
        if let Some(detail) = self.internal {
            res.extensions_mut().insert(Internal(detail));
        }
        res
    }
}

pub(crate) async fn not_found() -> PageError {
    PageError::not_found()
}
