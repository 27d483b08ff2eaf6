//! Turning templates into responses, plus small display helpers.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    brand: &'a str,
    heading: &'a str,
    message: &'a str,
}

/// Renders a template as an HTML response with `status`.
pub(crate) fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            let mut res = (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
            res.extensions_mut().insert(crate::error::Internal(format!("template: {err}")));
            res
        }
    }
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let heading = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::BAD_REQUEST => "That did not work",
        _ => "Something went wrong",
    };
    page(status, &ErrorPage { brand: "tessera", heading, message })
}

/// `2026-11-21 23:40 UTC` for a unix time.
pub(crate) fn datetime(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = tessera_crypto::civil::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(datetime(0), "1970-01-01 00:00 UTC");
        assert_eq!(datetime(1_795_300_000), "2026-11-21 22:26 UTC");
        assert_eq!(datetime(951_782_400), "2000-02-29 00:00 UTC");
    }
}
