//! Retirement notices from the server: a legacy endpoint (AuthSub, ClientLogin, OAuth 1.0) that an
//! administrator has dated answers with `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and
//! `Link: <…>; rel="deprecation"` headers. The legacy clients of this crate log each notice
//! (`tracing`, level `warn`, target `tessera_client::deprecation`) and keep the last one they saw
//! (`last_deprecation()` on each client), so an application learns it must migrate before the
//! endpoint refuses it.

use std::sync::{Arc, Mutex};

use http::HeaderMap;
use url::Url;

/// One answer's retirement notice, as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprecation {
    /// The endpoint that answered: scheme, host and path, never the query.
    pub endpoint: String,
    /// The `Deprecation` header: `@<unix seconds>` since when the endpoint is deprecated.
    pub since: String,
    /// The `Sunset` header (an HTTP-date): when the endpoint stops answering, if announced.
    pub sunset: Option<String>,
    /// The `Link` target with `rel="deprecation"`: where to read how to migrate.
    pub link: Option<String>,
}

impl Deprecation {
    /// The notice in `headers` of an answer from `endpoint`, if there is one.
    pub fn from_headers(endpoint: &Url, headers: &HeaderMap) -> Option<Deprecation> {
        let text = |name: &str| {
            headers.get(name).and_then(|it| it.to_str().ok()).map(|it| it.trim().to_owned())
        };
        let since = text("deprecation").filter(|it| !it.is_empty())?;
        let link = headers
            .get_all(http::header::LINK)
            .iter()
            .filter_map(|it| it.to_str().ok())
            .flat_map(|it| it.split(','))
            .find_map(deprecation_link);
        let mut endpoint = endpoint.clone();
        endpoint.set_query(None);
        endpoint.set_fragment(None);
        let _ = endpoint.set_password(None);
        let _ = endpoint.set_username("");
        Some(Deprecation { endpoint: endpoint.to_string(), since, sunset: text("sunset"), link })
    }
}

/// The target of one `Link` value if its `rel` names `deprecation`.
fn deprecation_link(value: &str) -> Option<String> {
    let mut parts = value.split(';');
    let target = parts.next()?.trim().strip_prefix('<')?.strip_suffix('>')?;
    parts
        .filter_map(|param| param.trim().split_once('='))
        .any(|(name, rel)| {
            name.trim().eq_ignore_ascii_case("rel")
                && rel.trim().trim_matches('"').split_whitespace().any(|it| it == "deprecation")
        })
        .then(|| target.to_owned())
}

/// The last notice a client saw, shared by its clones.
#[derive(Debug, Clone, Default)]
pub(crate) struct LastNotice(Arc<Mutex<Option<Deprecation>>>);

impl LastNotice {
    /// Logs and keeps the notice of one answer, if it carries one.
    pub(crate) fn observe(&self, endpoint: &Url, headers: &HeaderMap) {
        let Some(notice) = Deprecation::from_headers(endpoint, headers) else { return };
        tracing::warn!(
            target: "tessera_client::deprecation",
            endpoint = %notice.endpoint,
            since = %notice.since,
            sunset = %notice.sunset.as_deref().unwrap_or("not announced"),
            migrate = %notice.link.as_deref().unwrap_or("(no link)"),
            "the server deprecates this endpoint; move to OAuth 2.0 before the sunset"
        );
        if let Ok(mut last) = self.0.lock() {
            *last = Some(notice);
        }
    }

    pub(crate) fn get(&self) -> Option<Deprecation> {
        self.0.lock().ok().and_then(|it| it.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn a_notice_is_read_from_the_three_headers_and_the_query_is_left_out() {
        let url = Url::parse("https://id.example/accounts/ClientLogin?x=secret").unwrap();
        let notice = Deprecation::from_headers(
            &url,
            &headers(&[
                ("deprecation", "@1800000000"),
                ("sunset", "Sat, 01 Jan 2028 00:00:00 GMT"),
                ("link", "<https://id.example/next>; rel=\"next\""),
                ("link", "<https://id.example/accounts/LegacyMigration>; rel=\"deprecation\""),
            ]),
        )
        .unwrap();
        assert_eq!(
            notice,
            Deprecation {
                endpoint: "https://id.example/accounts/ClientLogin".to_owned(),
                since: "@1800000000".to_owned(),
                sunset: Some("Sat, 01 Jan 2028 00:00:00 GMT".to_owned()),
                link: Some("https://id.example/accounts/LegacyMigration".to_owned()),
            }
        );
        assert_eq!(Deprecation::from_headers(&url, &headers(&[("sunset", "x")])), None);
        assert_eq!(Deprecation::from_headers(&url, &headers(&[("deprecation", " ")])), None);
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_observed_notice_is_logged_once_and_kept() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber =
            tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let last = LastNotice::default();
        let url = Url::parse("http://127.0.0.1:9/accounts/AuthSubTokenInfo").unwrap();
        tracing::subscriber::with_default(subscriber, || {
            last.observe(&url, &headers(&[]));
            last.observe(
                &url,
                &headers(&[
                    ("deprecation", "@5"),
                    ("link", "<http://m.example/>; rel=deprecation"),
                ]),
            );
        });
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(log.matches("WARN").count(), 1, "{log}");
        assert!(log.contains("since=@5"), "{log}");
        assert!(log.contains("migrate=http://m.example/"), "{log}");
        assert_eq!(last.get().unwrap().link.as_deref(), Some("http://m.example/"));
    }
}
