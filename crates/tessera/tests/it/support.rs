//! The test harness: `TestEnv` starts a real server (SQLite in a temp dir, or a fresh PostgreSQL
//! database when `TESSERA_TEST_DATABASE_URL` is set and asked for) with a fixed clock, and `Browser`
//! is a cookie-keeping HTTP client that fills in forms the way a person would.

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera::{RawConfig, Server, StartOptions};
use tessera_domain::FixedClock;

/// 2026-11-21 00:00:00 UTC.
pub const T0: i64 = 1_795_219_200;

pub struct TestEnv {
    pub server: Option<Server>,
    pub clock: Arc<FixedClock>,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub raw: RawConfig,
}

/// Small Argon2id costs keep the suite fast; one test checks the production defaults separately.
pub fn test_config(dir: &std::path::Path) -> RawConfig {
    let mut raw =
        RawConfig { data_dir: dir.to_string_lossy().into_owned(), ..RawConfig::default() };
    raw.password.memory_kib = 256;
    raw.password.iterations = 1;
    raw.log.level = "warn".to_owned();
    raw
}

impl TestEnv {
    pub async fn start() -> TestEnv {
        TestEnv::with_config(|_| ()).await
    }

    pub async fn with_config(edit: impl FnOnce(&mut RawConfig)) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let mut raw = test_config(dir.path());
        edit(&mut raw);
        TestEnv::start_raw(raw, dir, StartOptions::default()).await
    }

    pub async fn start_raw(
        mut raw: RawConfig,
        dir: tempfile::TempDir,
        opts: StartOptions,
    ) -> TestEnv {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        raw.listen = addr.to_string();
        raw.public_url = format!("http://127.0.0.1:{}", addr.port());
        let config = raw.validate().unwrap();
        let clock = Arc::new(FixedClock::new(T0));
        let opts = StartOptions { clock: Some(clock.clone()), listener: Some(listener), ..opts };
        let server = Server::start(&config, opts).await.unwrap();
        TestEnv { server: Some(server), clock, dir, base: raw.public_url.clone(), raw }
    }

    /// Stops the server and starts a new one on the same data, as after a restart.
    pub async fn restart(mut self, edit: impl FnOnce(&mut RawConfig)) -> TestEnv {
        if let Some(server) = self.server.take() {
            server.stop().await.unwrap();
        }
        let mut raw = self.raw.clone();
        edit(&mut raw);
        let now = self.clock.now_value();
        let env = TestEnv::start_raw(raw, self.dir, StartOptions::default()).await;
        env.clock.set(now);
        env
    }

    pub fn ctx(&self) -> &tessera_domain::Ctx {
        &self.server.as_ref().unwrap().ctx
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// Creates an active account with this password.
    pub async fn account(&self, email: &str, password: &str) -> tessera_store::AccountRecord {
        let new = tessera_domain::accounts::NewAccount {
            email: email.to_owned(),
            name: email.split('@').next().unwrap().to_owned(),
            domain: None,
            password: Some(password.to_owned()),
            is_admin: false,
            state: tessera_store::AccountState::Active,
        };
        tessera_domain::accounts::create(self.ctx(), new, &tessera_domain::audit::Actor::Cli, "")
            .await
            .unwrap()
    }
}

trait NowValue {
    fn now_value(&self) -> i64;
}

impl NowValue for FixedClock {
    fn now_value(&self) -> i64 {
        tessera_domain::Clock::now(self)
    }
}

/// A response with its body read.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers.get("location").and_then(|it| it.to_str().ok()).unwrap_or_default()
    }

    /// The value of `<input name="NAME" value="…">` (first match).
    pub fn input(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&needle)? + needle.len();
        let end = self.body[start..].find('"')? + start;
        Some(html_unescape(&self.body[start..end]))
    }

    pub fn csrf(&self) -> String {
        self.input("csrf").expect("page has a CSRF field")
    }
}

pub fn html_unescape(s: &str) -> String {
    // Named entities plus every decimal (`&#38;`) and hex (`&#x2f;`) character reference.
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|end| *end <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A client that keeps cookies per name (one host), never follows redirects, and reads bodies.
pub struct Browser {
    pub base: String,
    pub jar: BTreeMap<String, String>,
    http: reqwest::Client,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        let http =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { base: base.to_owned(), jar: BTreeMap::new(), http }
    }

    fn cookie_header(&self) -> String {
        self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn absorb(&mut self, headers: &reqwest::header::HeaderMap) {
        for value in headers.get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if text.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn full(&self, path: &str) -> String {
        if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.base) }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let res = self
            .http
            .get(self.full(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.read(res).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let res = self
            .http
            .post(self.full(path))
            .header("cookie", self.cookie_header())
            .form(fields)
            .send()
            .await
            .unwrap();
        self.read(res).await
    }

    pub async fn post_raw(&mut self, path: &str, content_type: &str, body: Vec<u8>) -> Page {
        let res = self
            .http
            .post(self.full(path))
            .header("cookie", self.cookie_header())
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        self.read(res).await
    }

    async fn read(&mut self, res: reqwest::Response) -> Page {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        self.absorb(&headers);
        let body = res.text().await.unwrap_or_default();
        Page { status, headers, body }
    }

    /// Opens the sign-in form and submits it.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        self.sign_in_to(email, password, "/account").await
    }

    pub async fn sign_in_to(&mut self, email: &str, password: &str, continue_url: &str) -> Page {
        let form = self
            .get(&format!("/accounts/ServiceLogin?add=1&continue={}", urlencode(continue_url)))
            .await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        self.post(
            "/accounts/ServiceLoginAuth",
            &[("csrf", &csrf), ("continue", continue_url), ("Email", email), ("Passwd", password)],
        )
        .await
    }
}

pub fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Whether `candidate` works as an app password of `account`, asked through the one password
/// pipeline as ClientLogin asks it.
pub async fn app_password_works(
    env: &TestEnv,
    account: &tessera_domain::store::AccountRecord,
    candidate: &str,
) -> bool {
    let attempt = tessera_domain::password::Attempt {
        email: &account.email,
        password: candidate,
        captcha: None,
        ip: "198.51.100.200",
        accept: tessera_domain::password::Accept::PasswordOrAppPassword,
        fits: |_| true,
        unlockable: false,
        event: "test",
    };
    matches!(
        tessera_domain::password::check(env.ctx(), attempt).await.unwrap(),
        tessera_domain::password::Checked::Ok {
            via: tessera_domain::password::Via::AppPassword,
            ..
        }
    )
}

/// The interop tests' Python packages (pip name, import directory); `cargo xtask ci` installs the
/// same list.
const PYTHON_PACKAGES: [(&str, &str); 4] = [
    ("python3-openid", "openid"),
    ("oauthlib", "oauthlib"),
    ("cryptography", "cryptography"),
    ("PyJWT", "jwt"),
];

/// `target/py` with python-openid and oauthlib (installed by `cargo xtask ci`, or here when
/// missing); `None`, said loudly, when python3 is absent.
#[allow(clippy::print_stderr)]
pub async fn python_packages(what: &str) -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/py");
    if tokio::process::Command::new("python3").arg("--version").output().await.is_err() {
        eprintln!("SKIPPED: {what} interop (python3 is absent)");
        return None;
    }
    if !PYTHON_PACKAGES.iter().all(|(_, module)| dir.join(module).exists()) {
        let out = tokio::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target"])
            .arg(&dir)
            .args(PYTHON_PACKAGES.iter().map(|(package, _)| *package))
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    Some(dir)
}
