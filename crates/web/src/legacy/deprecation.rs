//! The deprecation switches over HTTP: the domain decides (`legacy::gate`); here a warned (or
//! refused) answer gets its headers: `Deprecation` (RFC 9745: `@<unix seconds>`), `Sunset`
//! (RFC 8594: an HTTP-date, when a refuse-from date is set) and `Link: <migration page>;
//! rel="deprecation"`. Each protocol's handler renders its own refusal.

use axum::response::Response;
use http::HeaderValue;
use tessera_domain::legacy::{self, Notice, Verdict};

/// Adds the deprecation headers of `notice` to `res`.
pub(crate) fn mark(res: &mut Response, notice: &Notice) {
    let headers = res.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("@{}", notice.deprecated_from)) {
        headers.insert("deprecation", value);
    }
    if let Some(sunset) = notice.sunset
        && let Ok(value) = HeaderValue::from_str(&legacy::http_date(sunset))
    {
        headers.insert("sunset", value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("<{}>; rel=\"deprecation\"", notice.link)) {
        headers.append(http::header::LINK, value);
    }
}

/// `res` with the headers a warned (or refused) verdict asks for.
pub(crate) fn answer(verdict: &Verdict, mut res: Response) -> Response {
    if let Verdict::Warned(notice) | Verdict::Refused(notice) = verdict {
        mark(&mut res, notice);
    }
    res
}
