//! The load generator's OAuth 1.0a signer: each signed request gets its own nonce and the current
//! timestamp, because the server refuses a nonce it has seen. Written for the benchmark from
//! RFC 5849 (§3.4 base string, §3.4.2 HMAC-SHA1, §3.4.3 RSA-SHA1, §3.6 percent-encoding); the
//! server's own parser and base-string builder are not used, so a scenario that passes also
//! checks that an independent signer and the server agree.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer as _};
use sha1::Sha1;

/// Which signature a request carries; the variables each needs are [`Sign::inputs`], and the
/// `Authorization` header value lands in the variable [`AUTHORIZATION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sign {
    /// HMAC-SHA1 with `{oauth1_consumer_key}`, `{oauth1_consumer_secret}`, `{oauth1_token}` and
    /// `{oauth1_token_secret}`, over `GET {oauth1_resource}`.
    OAuth1Hmac,
    /// RSA-SHA1 with the PKCS#8 PEM private key `{oauth1_rsa_key}`, the consumer
    /// `{oauth1_rsa_consumer_key}` and the token `{oauth1_rsa_token}`, over `GET {oauth1_resource}`.
    OAuth1Rsa,
}

/// The variable a signed request's `Authorization` header value is written to.
pub(crate) const AUTHORIZATION: &str = "oauth1_authorization";

impl Sign {
    pub(crate) fn inputs(self) -> &'static [&'static str] {
        match self {
            Sign::OAuth1Hmac => &[
                "oauth1_consumer_key",
                "oauth1_consumer_secret",
                "oauth1_token",
                "oauth1_token_secret",
                "oauth1_resource",
            ],
            Sign::OAuth1Rsa => &[
                "oauth1_rsa_key",
                "oauth1_rsa_consumer_key",
                "oauth1_rsa_token",
                "oauth1_resource",
            ],
        }
    }
}

/// One connection's signing state: a nonce counter and the parsed RSA key.
pub(crate) struct Signer {
    prefix: String,
    counter: u64,
    rsa: Option<(String, SigningKey<Sha1>)>,
}

impl Signer {
    /// `worker` makes this connection's nonces differ from every other's in the same run; the
    /// process id and start time, from every other run's.
    pub(crate) fn new(worker: usize) -> Signer {
        let started = unix_now().map_or(0, |d| d.as_nanos());
        Signer {
            prefix: format!("{:x}{started:x}w{worker}n", std::process::id()),
            counter: 0,
            rsa: None,
        }
    }

    /// The `Authorization: OAuth …` value for the next request.
    pub(crate) fn sign(
        &mut self,
        sign: Sign,
        vars: &HashMap<String, String>,
    ) -> Result<String, String> {
        let var = |name: &str| vars.get(name).ok_or_else(|| format!("no value for {{{name}}}"));
        self.counter += 1;
        let nonce = format!("{}{}", self.prefix, self.counter);
        let timestamp = unix_now()?.as_secs().to_string();
        let (consumer, token, method) = match sign {
            Sign::OAuth1Hmac => (var("oauth1_consumer_key")?, var("oauth1_token")?, "HMAC-SHA1"),
            Sign::OAuth1Rsa => {
                (var("oauth1_rsa_consumer_key")?, var("oauth1_rsa_token")?, "RSA-SHA1")
            }
        };
        let oauth = [
            ("oauth_consumer_key", consumer.as_str()),
            ("oauth_nonce", nonce.as_str()),
            ("oauth_signature_method", method),
            ("oauth_timestamp", timestamp.as_str()),
            ("oauth_token", token.as_str()),
            ("oauth_version", "1.0"),
        ];
        let base = base_string("GET", var("oauth1_resource")?, &oauth)?;
        let signature = match sign {
            Sign::OAuth1Hmac => {
                let key = format!(
                    "{}&{}",
                    encode(var("oauth1_consumer_secret")?),
                    encode(var("oauth1_token_secret")?)
                );
                let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes())
                    .map_err(|e| format!("HMAC key: {e}"))?;
                mac.update(base.as_bytes());
                BASE64.encode(mac.finalize().into_bytes())
            }
            Sign::OAuth1Rsa => {
                let pem = var("oauth1_rsa_key")?;
                if self.rsa.as_ref().is_none_or(|(known, _)| known != pem) {
                    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
                        .map_err(|e| format!("the RSA key fixture: {e}"))?;
                    self.rsa = Some((pem.clone(), SigningKey::<Sha1>::new(key)));
                }
                let (_, key) = self.rsa.as_ref().ok_or("no RSA key")?;
                BASE64.encode(key.sign(base.as_bytes()).to_bytes())
            }
        };
        let mut header = String::from("OAuth ");
        for (name, value) in oauth.iter().copied().chain([("oauth_signature", signature.as_str())])
        {
            if !header.ends_with(' ') {
                header.push_str(", ");
            }
            let _ = write!(header, "{name}=\"{}\"", encode(value));
        }
        Ok(header)
    }
}

/// The wall clock: the server checks `oauth_timestamp` against its own.
fn unix_now() -> Result<Duration, String> {
    #[allow(
        clippy::disallowed_methods,
        reason = "a signature's timestamp is wall-clock time, which the server under test checks"
    )]
    let now = SystemTime::now();
    now.duration_since(UNIX_EPOCH).map_err(|e| e.to_string())
}

/// RFC 5849 §3.6: everything but `ALPHA / DIGIT / "-" / "." / "_" / "~"` as `%XX`, upper case.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// RFC 5849 §3.4.1: the method, the base string URI (no query, no default port, lower-case scheme
/// and host) and the sorted, encoded parameters of the query and the `oauth_*` set.
pub(crate) fn base_string(
    method: &str,
    url: &str,
    oauth: &[(&str, &str)],
) -> Result<String, String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("not a URL: {url}"))?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.find('/').map_or((rest, "/"), |at| rest.split_at(at));
    let scheme = scheme.to_ascii_lowercase();
    let mut authority = authority.to_ascii_lowercase();
    for default in [(":80", "http"), (":443", "https")] {
        if scheme == default.1
            && let Some(host) = authority.strip_suffix(default.0)
        {
            authority = host.to_owned();
        }
    }
    let mut params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (encode(&k), encode(&v)))
        .chain(oauth.iter().map(|(k, v)| (encode(k), encode(v))))
        .collect();
    params.sort();
    let normalized = params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    Ok(format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        encode(&format!("{scheme}://{authority}{path}")),
        encode(&normalized)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_string_follows_rfc_5849() {
        // RFC 5849 §3.4.1.1's example request, its own parameters and base string.
        let base = base_string(
            "post",
            "HTTP://Example.com:80/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b",
            &[
                ("oauth_consumer_key", "9djdj82h48djs9d2"),
                ("oauth_token", "kkk9d7dh3k39sjv7"),
                ("oauth_signature_method", "HMAC-SHA1"),
                ("oauth_timestamp", "137131201"),
                ("oauth_nonce", "7d8f3e4a"),
                ("c2", ""),
                ("a3", "2 q"),
            ],
        );
        assert_eq!(
            base.as_deref(),
            Ok("POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q\
                %26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_\
                key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m\
                ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk\
                9d7dh3k39sjv7")
        );
    }

    #[test]
    fn every_signature_has_its_own_nonce() -> Result<(), String> {
        let vars: HashMap<String, String> = [
            ("oauth1_consumer_key", "bench.example.test"),
            ("oauth1_consumer_secret", "s&cret"),
            ("oauth1_token", "1/abc"),
            ("oauth1_token_secret", "t"),
            ("oauth1_resource", "https://calendar.example.test/feeds/default?max-results=25"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut signer = Signer::new(3);
        let first = signer.sign(Sign::OAuth1Hmac, &vars)?;
        let second = signer.sign(Sign::OAuth1Hmac, &vars)?;
        assert!(
            first.starts_with("OAuth oauth_consumer_key=\"bench.example.test\", oauth_nonce=\"")
        );
        assert!(first.contains("oauth_token=\"1%2Fabc\""));
        assert!(first.contains("oauth_signature=\""));
        let nonce = |h: &str| {
            h.split("oauth_nonce=\"").nth(1).and_then(|r| r.split('"').next()).map(str::to_owned)
        };
        assert_ne!(nonce(&first), nonce(&second));
        assert!(Signer::new(4).sign(Sign::OAuth1Hmac, &vars)? != first);
        Ok(())
    }
}
