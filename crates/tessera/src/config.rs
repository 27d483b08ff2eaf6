//! Configuration: defaults, then the TOML file, then `TESSERA_…` environment variables, then flags.
//! The raw form (`RawConfig`) holds every key with its default; `validate` turns it into `Config`
//! with parsed URLs and resolved paths, naming the key in every complaint.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, format_err};
use serde::{Deserialize, Serialize};
use tessera_crypto::password::PasswordParams;
use tessera_domain::Policy;

/// The configuration file as written, every key optional, unknown keys refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub version: u32,
    pub listen: String,
    pub public_url: String,
    pub data_dir: String,
    /// `postgres://…` to run on PostgreSQL; empty for embedded SQLite in the data directory.
    pub database_url: String,
    /// Base64 of 32 bytes; empty to use (or create) `kek` in the data directory.
    pub kek: String,
    pub kek_file: String,
    pub log: LogConfig,
    pub password: PasswordConfig,
    pub signin: SigninConfig,
    pub store: StoreConfig,
    pub legacy: LegacyConfig,
    pub device: DeviceConfig,
    pub oauth2: OAuth2Config,
    pub http: HttpConfig,
    pub metrics: MetricsConfig,
    pub push: PushConfig,
    pub proxy: ProxyConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// An `EnvFilter` directive, e.g. `info` or `info,tessera::http=warn`.
    pub level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub max_concurrent: u32,
    pub min_length: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigninConfig {
    pub captcha_after_account_failures: u32,
    pub captcha_after_ip_failures: u32,
    /// Failures from one network (IPv4 /24, IPv6 /64) before a CAPTCHA is required.
    pub captcha_after_network_failures: u32,
    /// Failures against one account after which it may be guessed once per `guess_interval_secs`.
    pub guess_budget_after_failures: u32,
    pub guess_interval_secs: i64,
    pub failure_window_secs: i64,
    pub session_ttl_secs: i64,
    pub persistent_session_ttl_secs: i64,
    /// URL prefixes on other origins that `continue` may send browsers to.
    pub continue_prefixes: Vec<String>,
}

/// `[legacy]`: switches the 2012-era account protocols off per deployment (all on by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LegacyConfig {
    pub authsub: bool,
    pub clientlogin: bool,
    /// OAuth 1.0a (`OAuthGetRequestToken`, `OAuthAuthorizeToken`, `OAuthGetAccessToken` and
    /// OAuth-signed resource calls).
    pub oauth1: bool,
    pub openid2: bool,
    /// Deprecation dates per protocol: from `<protocol>_warn_from` answers carry `Deprecation`,
    /// `Sunset` and `Link` headers; from `<protocol>_refuse_from` requests are refused with the
    /// protocol's own error. Unix seconds or RFC 3339 (`2027-06-01`, `2027-06-01T00:00:00Z`);
    /// empty: never. Per-application dates (`admin legacy deprecate`) override them.
    pub authsub_warn_from: String,
    pub authsub_refuse_from: String,
    pub clientlogin_warn_from: String,
    pub clientlogin_refuse_from: String,
    pub oauth1_warn_from: String,
    pub oauth1_refuse_from: String,
    pub openid2_warn_from: String,
    pub openid2_refuse_from: String,
    /// The page warned and refused answers link to; empty: `<public_url>/accounts/LegacyMigration`.
    pub migration_url: String,
}

impl LegacyConfig {
    /// The deprecation dates and migration page, checked.
    fn deprecations(&self) -> anyhow::Result<tessera_domain::legacy::Deprecations> {
        use tessera_domain::legacy::{Dates, parse_date};
        let date = |key: &str, text: &str| -> anyhow::Result<Option<i64>> {
            match text.trim() {
                "" => Ok(None),
                text => parse_date(text).map(Some).ok_or_else(|| {
                    format_err!(
                        "legacy.{key}: {text:?} is not unix seconds or an RFC 3339 date (2027-06-01, 2027-06-01T00:00:00Z)"
                    )
                }),
            }
        };
        let dates = |name: &str, warn: &str, refuse: &str| -> anyhow::Result<Dates> {
            let dates = Dates {
                warn_from: date(&format!("{name}_warn_from"), warn)?,
                refuse_from: date(&format!("{name}_refuse_from"), refuse)?,
            };
            if let (Some(warn), Some(refuse)) = (dates.warn_from, dates.refuse_from)
                && warn > refuse
            {
                return Err(format_err!(
                    "legacy.{name}_warn_from: must not be after {name}_refuse_from"
                ));
            }
            Ok(dates)
        };
        let url = self.migration_url.trim();
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://"))
            || url.chars().any(|c| c.is_control() || matches!(c, ' ' | '<' | '>' | '"'))
        {
            return Err(format_err!("legacy.migration_url: must be an http or https URL"));
        }
        Ok(tessera_domain::legacy::Deprecations {
            authsub: dates("authsub", &self.authsub_warn_from, &self.authsub_refuse_from)?,
            clientlogin: dates(
                "clientlogin",
                &self.clientlogin_warn_from,
                &self.clientlogin_refuse_from,
            )?,
            oauth1: dates("oauth1", &self.oauth1_warn_from, &self.oauth1_refuse_from)?,
            openid2: dates("openid2", &self.openid2_warn_from, &self.openid2_refuse_from)?,
            migration_url: url.to_owned(),
        })
    }

    /// The protocols switched off here; their credentials stop working everywhere.
    fn disabled_protocols(&self) -> Vec<tessera_domain::credentials::Protocol> {
        use tessera_domain::credentials::Protocol;
        [
            (Protocol::AuthSub, self.authsub),
            (Protocol::ClientLogin, self.clientlogin),
            (Protocol::OAuth1, self.oauth1),
            (Protocol::OpenId2, self.openid2),
        ]
        .into_iter()
        .filter_map(|(protocol, on)| (!on).then_some(protocol))
        .collect()
    }
}

impl Default for LegacyConfig {
    fn default() -> LegacyConfig {
        LegacyConfig {
            authsub: true,
            clientlogin: true,
            oauth1: true,
            openid2: true,
            authsub_warn_from: String::new(),
            authsub_refuse_from: String::new(),
            clientlogin_warn_from: String::new(),
            clientlogin_refuse_from: String::new(),
            oauth1_warn_from: String::new(),
            oauth1_refuse_from: String::new(),
            openid2_warn_from: String::new(),
            openid2_refuse_from: String::new(),
            migration_url: String::new(),
        }
    }
}

/// `[device]`: Android device login (`POST /auth`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    /// Serve `/auth`; off, master tokens stop working everywhere.
    pub enabled: bool,
    /// Accept a plain `Passwd` when the public URL is http (always accepted over https).
    pub plain_passwd: bool,
}

impl Default for DeviceConfig {
    fn default() -> DeviceConfig {
        DeviceConfig { enabled: true, plain_passwd: false }
    }
}

/// `[proxy]`: the front-end token proxy's outgoing calls.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Connect to private, loopback, link-local and other special addresses too.
    pub allow_private_addresses: bool,
    /// Exactly these `ip:port` addresses may be connected to although they are special.
    pub allowed_addresses: Vec<String>,
    /// The largest response body passed back, in bytes.
    pub max_response_bytes: u64,
    /// The longest one proxied request may take, redirects included, in seconds.
    pub timeout_secs: u64,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        let policy = tessera_domain::proxy::ProxyPolicy::default();
        ProxyConfig {
            allow_private_addresses: policy.allow_private_addresses,
            allowed_addresses: Vec::new(),
            max_response_bytes: policy.max_response_bytes as u64,
            timeout_secs: policy.timeout_secs,
        }
    }
}

impl ProxyConfig {
    fn policy(&self) -> anyhow::Result<tessera_domain::proxy::ProxyPolicy> {
        let mut allowed = Vec::new();
        for text in &self.allowed_addresses {
            let addr: std::net::SocketAddr = text.parse().map_err(|_| {
                format_err!("proxy.allowed_addresses: {text:?} is not an ip:port address")
            })?;
            allowed.push(addr);
        }
        if !(1..=64 * 1024 * 1024).contains(&self.max_response_bytes) {
            return Err(format_err!("proxy.max_response_bytes: must be 1 to 67108864"));
        }
        if !(1..=120).contains(&self.timeout_secs) {
            return Err(format_err!("proxy.timeout_secs: must be 1 to 120"));
        }
        Ok(tessera_domain::proxy::ProxyPolicy {
            allow_private_addresses: self.allow_private_addresses,
            allowed_addresses: allowed,
            max_response_bytes: self.max_response_bytes as usize,
            timeout_secs: self.timeout_secs,
        })
    }
}

/// `[oauth2]`: deployment-wide OAuth 2.0 hardening switches (both off by default).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuth2Config {
    /// Every client must push its authorization requests first (RFC 9126).
    pub require_par: bool,
    /// DPoP proofs at the token endpoint must carry a server nonce (RFC 9449 §8).
    pub dpop_nonce: bool,
}

/// `[metrics]`: where `/metrics` is served and who may read it. With neither key set it is not
/// served at all.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// An address of its own for `/metrics` (e.g. `127.0.0.1:9464`); empty: the main listener.
    pub listen: String,
    /// A bearer token scrapers must send; empty: none (then only `listen` serves metrics).
    pub token: String,
}

/// `[push]`: push messaging quotas, storage limits and the delivery connections' limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Messages one sender may send per minute (`QuotaExceeded` beyond); 0: no limit.
    pub sender_per_minute: u32,
    /// Messages one registration may be sent per minute (`DeviceQuotaExceeded` beyond); 0: none.
    pub device_per_minute: u32,
    /// Distinct collapse keys stored per registration.
    pub max_collapse_keys: u32,
    /// Non-collapsible messages stored per registration before one `deleted_messages` notice
    /// replaces them.
    pub max_non_collapsible: u32,
    pub max_topics_per_registration: u32,
    /// First registrations without a credential per client address (IPv6: /64) and minute; 0: none.
    pub new_installs_per_minute: u32,
    /// `Retry-After` seconds of the 503 answered when the store fails.
    pub retry_after_secs: u32,
    /// Delivery connections one device may hold on a node.
    pub max_connections_per_device: u32,
    /// Registration ids one delivery connection may carry.
    pub max_registrations_per_connection: u32,
    /// A delivered message not acknowledged within this is sent again.
    pub ack_timeout_secs: i64,
    /// A quiet connection is pinged after this long.
    pub ping_interval_secs: i64,
    /// A connection not heard from for this long is closed.
    pub dead_after_secs: i64,
    /// The largest frame a device may send, in bytes.
    pub max_frame_bytes: u32,
    /// Stored messages read per registration and delivery.
    pub delivery_batch: u32,
    /// Now-or-never frames queued for one connection before more are dropped.
    pub max_queued_now: u32,
}

impl Default for PushConfig {
    fn default() -> PushConfig {
        let push = tessera_domain::push::PushPolicy::default();
        let d = push.delivery;
        PushConfig {
            sender_per_minute: push.sender_per_minute,
            device_per_minute: push.device_per_minute,
            max_collapse_keys: push.max_collapse_keys,
            max_non_collapsible: push.max_non_collapsible,
            max_topics_per_registration: push.max_topics_per_registration,
            new_installs_per_minute: push.new_installs_per_minute,
            retry_after_secs: push.retry_after_secs,
            max_connections_per_device: d.max_connections_per_device,
            max_registrations_per_connection: u32::try_from(d.max_registrations)
                .unwrap_or(u32::MAX),
            ack_timeout_secs: d.ack_timeout_secs,
            ping_interval_secs: d.ping_interval_secs,
            dead_after_secs: d.dead_after_secs,
            max_frame_bytes: u32::try_from(d.max_frame_bytes).unwrap_or(u32::MAX),
            delivery_batch: d.batch,
            max_queued_now: u32::try_from(d.max_queued_now).unwrap_or(u32::MAX),
        }
    }
}

impl PushConfig {
    /// The checked policy, naming the key in every complaint.
    fn policy(&self) -> anyhow::Result<tessera_domain::push::PushPolicy> {
        for (key, value) in [
            ("max_collapse_keys", self.max_collapse_keys),
            ("max_non_collapsible", self.max_non_collapsible),
            ("max_topics_per_registration", self.max_topics_per_registration),
            ("max_connections_per_device", self.max_connections_per_device),
            ("max_registrations_per_connection", self.max_registrations_per_connection),
            ("max_frame_bytes", self.max_frame_bytes),
            ("delivery_batch", self.delivery_batch),
            ("max_queued_now", self.max_queued_now),
        ] {
            if value < 1 {
                return Err(format_err!("push.{key}: must be at least 1"));
            }
        }
        if !(1..=3600).contains(&self.retry_after_secs) {
            return Err(format_err!("push.retry_after_secs: must be 1 to 3600"));
        }
        if self.max_frame_bytes > 1 << 20 {
            return Err(format_err!("push.max_frame_bytes: at most 1048576"));
        }
        if self.ack_timeout_secs < 1 || self.ping_interval_secs < 1 {
            return Err(format_err!(
                "push: ack_timeout_secs and ping_interval_secs must be positive"
            ));
        }
        if self.dead_after_secs <= self.ping_interval_secs {
            return Err(format_err!(
                "push.dead_after_secs: must be longer than push.ping_interval_secs"
            ));
        }
        Ok(tessera_domain::push::PushPolicy {
            sender_per_minute: self.sender_per_minute,
            device_per_minute: self.device_per_minute,
            max_collapse_keys: self.max_collapse_keys,
            max_non_collapsible: self.max_non_collapsible,
            max_topics_per_registration: self.max_topics_per_registration,
            new_installs_per_minute: self.new_installs_per_minute,
            retry_after_secs: self.retry_after_secs,
            delivery: tessera_domain::push::delivery::DeliveryPolicy {
                max_connections_per_device: self.max_connections_per_device,
                max_registrations: self.max_registrations_per_connection as usize,
                ack_timeout_secs: self.ack_timeout_secs,
                ping_interval_secs: self.ping_interval_secs,
                dead_after_secs: self.dead_after_secs,
                max_frame_bytes: self.max_frame_bytes as usize,
                batch: self.delivery_batch,
                max_queued_now: self.max_queued_now as usize,
            },
        })
    }
}

/// `[http]`: connection limits and timeouts of the HTTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// How long a client has to send a whole request head.
    pub header_read_timeout_ms: u64,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout_ms: u64,
    /// How long a request may take, reading its body included, before it is answered 503.
    pub request_timeout_ms: u64,
    pub max_connections: u32,
    /// Per IPv4 address or IPv6 /64; behind a reverse proxy every connection has its address.
    pub max_connections_per_address: u32,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 75_000,
            request_timeout_ms: 30_000,
            max_connections: 1024,
            max_connections_per_address: 256,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub max_connections: u32,
    pub sweep_interval_secs: u64,
    pub sweep_batch: u32,
    /// SQLite: sync every commit to disk before answering, issued tokens and sessions included, so
    /// that they survive a power loss too. Revocations, password changes, account disables and
    /// sign-outs are synced either way; PostgreSQL follows the server's `synchronous_commit`.
    pub sync_issuance: bool,
    /// Token checks kept in memory, each for at most the current second and only while nothing
    /// that could change it was written through this process; 0 keeps none.
    pub token_answers: u32,
}

impl Default for RawConfig {
    fn default() -> RawConfig {
        RawConfig {
            version: 1,
            listen: "127.0.0.1:8080".to_owned(),
            public_url: String::new(),
            data_dir: "./tessera-data".to_owned(),
            database_url: String::new(),
            kek: String::new(),
            kek_file: String::new(),
            log: LogConfig::default(),
            password: PasswordConfig::default(),
            signin: SigninConfig::default(),
            store: StoreConfig::default(),
            legacy: LegacyConfig::default(),
            device: DeviceConfig::default(),
            oauth2: OAuth2Config::default(),
            http: HttpConfig::default(),
            metrics: MetricsConfig::default(),
            push: PushConfig::default(),
            proxy: ProxyConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig { format: "text".to_owned(), level: "info".to_owned() }
    }
}

impl Default for PasswordConfig {
    fn default() -> PasswordConfig {
        let params = PasswordParams::default();
        PasswordConfig {
            memory_kib: params.m_cost_kib,
            iterations: params.t_cost,
            parallelism: params.p_cost,
            max_concurrent: 4,
            min_length: 8,
        }
    }
}

impl Default for SigninConfig {
    fn default() -> SigninConfig {
        let policy = Policy::default();
        SigninConfig {
            captcha_after_account_failures: policy.captcha_after_account_failures,
            captcha_after_ip_failures: policy.captcha_after_ip_failures,
            captcha_after_network_failures: policy.captcha_after_network_failures,
            guess_budget_after_failures: policy.guess_budget_after_failures,
            guess_interval_secs: policy.guess_interval_secs,
            failure_window_secs: policy.failure_window_secs,
            session_ttl_secs: policy.session_ttl_secs,
            persistent_session_ttl_secs: policy.persistent_session_ttl_secs,
            continue_prefixes: Vec::new(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            max_connections: 8,
            sweep_interval_secs: 600,
            sweep_batch: 1000,
            sync_issuance: false,
            token_answers: 10_000,
        }
    }
}

/// Parses and validates a configuration file's text alone (no environment, no file system): what
/// `tessera` does with `--config`, for the parser's property tests and fuzz target. Never panics.
pub fn parse_and_validate(text: &str) -> anyhow::Result<Config> {
    RawConfig::from_text(Some((text, "config")), std::iter::empty())?.validate()
}

/// Environment variables with this prefix that are not configuration keys (test and bench knobs).
const ENV_NOT_CONFIG: &[&str] =
    &["TESSERA_TEST_DATABASE_URL", "TESSERA_BENCH_DATABASE_URL", "TESSERA_LOG"];

impl RawConfig {
    /// Reads the file (if any) and applies the environment on top.
    pub fn load(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> anyhow::Result<RawConfig> {
        match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                RawConfig::from_text(Some((&text, &path.display().to_string())), env)
            }
            None => RawConfig::from_text(None, env),
        }
    }

    /// Parses a configuration file's text (`origin` names it in errors) and applies the
    /// environment on top: [`RawConfig::load`] without the file system.
    pub fn from_text(
        file: Option<(&str, &str)>,
        env: impl Iterator<Item = (String, String)>,
    ) -> anyhow::Result<RawConfig> {
        let mut value =
            toml::Value::try_from(RawConfig::default()).context("default configuration")?;
        if let Some((text, origin)) = file {
            let from_file: toml::Value =
                toml::from_str(text).map_err(|err| format_err!("{origin}: {}", err.message()))?;
            // Parse once on its own to get unknown-key errors that name the key.
            let _: RawConfig =
                toml::from_str(text).map_err(|err| format_err!("{origin}: {}", err.message()))?;
            merge(&mut value, from_file);
        }
        for (name, text) in env {
            if !name.starts_with("TESSERA_") || ENV_NOT_CONFIG.contains(&name.as_str()) {
                continue;
            }
            apply_env(&mut value, &name, &text)?;
        }
        let raw: RawConfig = value
            .try_into()
            .map_err(|err: toml::de::Error| format_err!("configuration: {}", err.message()))?;
        Ok(raw)
    }

    /// Turns the raw form into checked, resolved settings.
    pub fn validate(&self) -> anyhow::Result<Config> {
        if self.version != 1 {
            return Err(format_err!(
                "version: only version = 1 is understood, not {}",
                self.version
            ));
        }
        let listen: std::net::SocketAddr = self
            .listen
            .parse()
            .map_err(|_| format_err!("listen: {:?} is not an address:port", self.listen))?;
        let public_url_from_listen = self.public_url.is_empty();
        let public_url = if public_url_from_listen {
            local_url(listen)
        } else {
            let public = url::Url::parse(&self.public_url)
                .map_err(|_| format_err!("public_url: {:?} is not a URL", self.public_url))?;
            if !matches!(public.scheme(), "http" | "https")
                || public.host_str().is_none()
                || public.query().is_some()
                || public.fragment().is_some()
            {
                return Err(format_err!(
                    "public_url: must be an http(s) URL without query or fragment"
                ));
            }
            self.public_url.trim_end_matches('/').to_owned()
        };
        let data_dir = PathBuf::from(&self.data_dir);
        let database_url = match self.database_url.as_str() {
            "" => None,
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Some(url.to_owned())
            }
            _ => {
                return Err(format_err!(
                    "database_url: must start with postgres:// (leave it empty for embedded SQLite)"
                ));
            }
        };
        match self.log.format.as_str() {
            "text" | "json" => (),
            other => return Err(format_err!("log.format: {other:?} is not text or json")),
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|err| format_err!("log.level: {err}"))?;
        let p = &self.password;
        if p.memory_kib < 8 * p.parallelism.max(1)
            || p.iterations < 1
            || p.parallelism < 1
            || p.max_concurrent < 1
        {
            return Err(format_err!(
                "password: memory_kib, iterations, parallelism and max_concurrent must be positive (memory_kib ≥ 8 × parallelism)"
            ));
        }
        if p.min_length < 1 {
            return Err(format_err!("password.min_length: must be at least 1"));
        }
        let s = &self.signin;
        if s.failure_window_secs < 1
            || s.session_ttl_secs < 60
            || s.persistent_session_ttl_secs < 60
        {
            return Err(format_err!(
                "signin: failure_window_secs ≥ 1 and session TTLs ≥ 60 seconds"
            ));
        }
        if s.guess_interval_secs < 1 || s.guess_budget_after_failures < 1 {
            return Err(format_err!(
                "signin: guess_budget_after_failures and guess_interval_secs must be positive"
            ));
        }
        for prefix in &s.continue_prefixes {
            let url = url::Url::parse(prefix)
                .map_err(|_| format_err!("signin.continue_prefixes: {prefix:?} is not a URL"))?;
            if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() {
                return Err(format_err!(
                    "signin.continue_prefixes: {prefix:?} must be an http(s) URL without userinfo"
                ));
            }
        }
        if self.store.max_connections < 1
            || self.store.sweep_batch < 1
            || self.store.sweep_interval_secs < 1
        {
            return Err(format_err!(
                "store: max_connections, sweep_batch and sweep_interval_secs must be positive"
            ));
        }
        if self.store.token_answers > 1_000_000 {
            return Err(format_err!("store.token_answers: at most 1000000 (0 keeps none)"));
        }
        let h = &self.http;
        for (key, ms) in [
            ("header_read_timeout_ms", h.header_read_timeout_ms),
            ("idle_timeout_ms", h.idle_timeout_ms),
            ("request_timeout_ms", h.request_timeout_ms),
        ] {
            if !(1..=MAX_TIMEOUT_MS).contains(&ms) {
                return Err(format_err!(
                    "http.{key}: must be between 1 and {MAX_TIMEOUT_MS} milliseconds"
                ));
            }
        }
        if h.max_connections < 1 {
            return Err(format_err!("http.max_connections: must be at least 1"));
        }
        if !(1..=h.max_connections).contains(&h.max_connections_per_address) {
            return Err(format_err!(
                "http.max_connections_per_address: must be between 1 and http.max_connections ({})",
                h.max_connections
            ));
        }
        let limits = tessera_web::ConnLimits {
            header_read_timeout: Duration::from_millis(h.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(h.idle_timeout_ms),
            max_connections: h.max_connections as usize,
            max_connections_per_address: h.max_connections_per_address as usize,
        };
        let request_timeout = Duration::from_millis(h.request_timeout_ms);
        let metrics_listen = match self.metrics.listen.as_str() {
            "" => None,
            text => {
                let addr: std::net::SocketAddr = text
                    .parse()
                    .map_err(|_| format_err!("metrics.listen: {text:?} is not an address:port"))?;
                if addr == listen && addr.port() != 0 {
                    return Err(format_err!("metrics.listen: must differ from listen"));
                }
                Some(addr)
            }
        };
        let token = &self.metrics.token;
        if !token.is_empty()
            && (!(16..=256).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(format_err!(
                "metrics.token: must be 16 to 256 visible ASCII characters (no spaces)"
            ));
        }
        if !self.kek.is_empty() {
            tessera_crypto::kek::Kek::parse(&self.kek)
                .map_err(|_| format_err!("kek: must be base64 of exactly 32 bytes"))?;
        }
        let push = self.push.policy()?;
        let proxy = self.proxy.policy()?;
        let deprecation = self.legacy.deprecations()?;
        let policy = Policy {
            push,
            proxy,
            deprecation,
            password: PasswordParams {
                m_cost_kib: p.memory_kib,
                t_cost: p.iterations,
                p_cost: p.parallelism,
            },
            password_concurrency: p.max_concurrent as usize,
            min_password_len: p.min_length as usize,
            captcha_after_account_failures: s.captcha_after_account_failures,
            captcha_after_ip_failures: s.captcha_after_ip_failures,
            captcha_after_network_failures: s.captcha_after_network_failures,
            guess_budget_after_failures: s.guess_budget_after_failures,
            guess_interval_secs: s.guess_interval_secs,
            failure_window_secs: s.failure_window_secs,
            disabled_protocols: {
                let mut off = self.legacy.disabled_protocols();
                if !self.device.enabled {
                    off.push(tessera_domain::credentials::Protocol::Device);
                }
                off
            },
            device_plain_passwd: self.device.plain_passwd,
            require_par: self.oauth2.require_par,
            dpop_nonce: self.oauth2.dpop_nonce,
            session_ttl_secs: s.session_ttl_secs,
            persistent_session_ttl_secs: s.persistent_session_ttl_secs,
            token_answers: self.store.token_answers as usize,
            ..Policy::default()
        };
        Ok(Config {
            raw: self.clone(),
            listen,
            public_url,
            public_url_from_listen,
            data_dir,
            database_url,
            policy,
            limits,
            request_timeout,
            metrics_listen,
        })
    }
}

impl Config {
    /// The settings of a server bound to `addr`: without a configured public URL, the URL to open
    /// is that address's (a port chosen by the system included).
    pub fn bound_to(&self, addr: std::net::SocketAddr) -> Config {
        let mut config = self.clone();
        if config.public_url_from_listen {
            config.public_url = local_url(addr);
        }
        config
    }
}

/// The URL a person on this machine opens to reach a server listening on `addr`: the loopback
/// address when it listens on every interface.
pub fn local_url(addr: std::net::SocketAddr) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, addr.port()))
}

/// The longest `[http]` timeout accepted: an hour.
const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub raw: RawConfig,
    pub listen: std::net::SocketAddr,
    /// The configured public URL, or when none is configured the URL of the listen address.
    pub public_url: String,
    /// No public URL is configured: a server takes the URL of the address it actually bound.
    pub public_url_from_listen: bool,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub policy: Policy,
    /// Connection limits and timeouts of the listeners (`[http]`).
    pub limits: tessera_web::ConnLimits,
    pub request_timeout: Duration,
    /// A listener of its own for `/metrics`.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

fn merge(base: &mut toml::Value, top: toml::Value) {
    match (base, top) {
        (toml::Value::Table(base), toml::Value::Table(top)) => {
            for (key, value) in top {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, top) => *base = top,
    }
}

/// `TESSERA_SIGNIN_SESSION_TTL_SECS=60` sets `signin.session_ttl_secs`: the name is matched against
/// the known keys (a section name, then the key), and the text is read as the key's type.
fn apply_env(value: &mut toml::Value, name: &str, text: &str) -> anyhow::Result<()> {
    let key = name["TESSERA_".len()..].to_ascii_lowercase();
    let toml::Value::Table(root) = value else { return Ok(()) };
    let mut target: Option<(Option<String>, String)> = None;
    for (section, section_value) in root.iter() {
        match section_value {
            toml::Value::Table(table) => {
                if let Some(rest) = key.strip_prefix(&format!("{section}_"))
                    && table.contains_key(rest)
                {
                    target = Some((Some(section.clone()), rest.to_owned()));
                }
            }
            _ => {
                if *section == key {
                    target = Some((None, key.clone()));
                }
            }
        }
    }
    let Some((section, field)) = target else {
        return Err(format_err!("{name}: no such configuration key"));
    };
    let table = match &section {
        Some(section) => match root.get_mut(section) {
            Some(toml::Value::Table(table)) => table,
            _ => return Ok(()),
        },
        None => root,
    };
    let parsed = match table.get(&field) {
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            text.trim()
                .parse()
                .map_err(|_| format_err!("{name}: {text:?} is not a whole number"))?,
        ),
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
            text.trim()
                .parse()
                .map_err(|_| format_err!("{name}: {text:?} is not true or false"))?,
        ),
        Some(toml::Value::Array(_)) => toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|it| !it.is_empty())
                .map(|it| toml::Value::String(it.to_owned()))
                .collect(),
        ),
        _ => toml::Value::String(text.to_owned()),
    };
    table.insert(field, parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    proptest::proptest! {
        /// Any text, and TOML-shaped text over the real sections and keys with values of every
        /// type, is parsed and validated into a configuration or a clear error, never a panic;
        /// the defaults alone validate.
        #[test]
        fn any_config_text_parses_or_fails_cleanly(
            noise in ".{0,200}",
            lines in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "", "[oauth2]", "[signin]", "[http]", "[password]", "[limits]", "[push]", "[x]",
                    ]),
                    proptest::sample::select(vec![
                        "version", "listen", "public_url", "data_dir", "kek", "database_url",
                        "require_par", "dpop_nonce", "session_ttl_secs", "disabled_protocols",
                        "header_read_timeout_ms", "max_connections", "sender_per_minute",
                        "dead_after_secs", "retry_after_secs", "unknown",
                    ]),
                    proptest::sample::select(vec![
                        "1", "0", "-1", "99999999999999999999", "true", "\"\"", "\"127.0.0.1:0\"",
                        "\"http://[::1]:1/\"", "[]", "[\"oauth1\", 3]", "{}", "1.5", "\"\\u0000\"",
                        "1979-05-27T07:32:00Z",
                    ]),
                ),
                0..12,
            ),
        ) {
            let _ = parse_and_validate(&noise);
            let text: String = lines
                .iter()
                .map(|(section, key, value)| format!("{section}\n{key} = {value}\n"))
                .collect();
            let _ = parse_and_validate(&text);
        }
    }

    #[test]
    fn the_defaults_parse_and_validate() {
        parse_and_validate("").unwrap();
        assert!(parse_and_validate("version = 2").unwrap_err().to_string().contains("version"));
        assert!(parse_and_validate("nope = 1").is_err());
    }

    #[test]
    fn layers_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(
            &path,
            "version = 1\nlisten = \"127.0.0.1:9000\"\n[signin]\nsession_ttl_secs = 600\n",
        )
        .unwrap();
        let raw = RawConfig::load(
            Some(&path),
            env(&[
                ("TESSERA_SIGNIN_SESSION_TTL_SECS", "900"),
                ("TESSERA_DATABASE_URL", "postgres://x/y"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(raw.listen, "127.0.0.1:9000");
        assert_eq!(raw.signin.session_ttl_secs, 900);
        assert_eq!(raw.database_url, "postgres://x/y");
        let config = raw.validate().unwrap();
        assert_eq!(config.policy.session_ttl_secs, 900);
    }

    #[test]
    fn token_answers_are_kept_unless_switched_off() {
        let config = RawConfig::load(None, env(&[])).unwrap().validate().unwrap();
        assert_eq!(config.policy.token_answers, 10_000);
        let raw = RawConfig::load(None, env(&[("TESSERA_STORE_TOKEN_ANSWERS", "0")])).unwrap();
        assert_eq!(raw.validate().unwrap().policy.token_answers, 0);
        let raw =
            RawConfig::load(None, env(&[("TESSERA_STORE_TOKEN_ANSWERS", "2000000")])).unwrap();
        let err = raw.validate().unwrap_err().to_string();
        assert!(err.contains("store.token_answers"), "{err}");
    }

    #[test]
    fn issuance_is_not_synced_unless_asked() {
        assert!(!RawConfig::load(None, env(&[])).unwrap().store.sync_issuance);
        let raw = RawConfig::load(None, env(&[("TESSERA_STORE_SYNC_ISSUANCE", "true")])).unwrap();
        assert!(raw.store.sync_issuance);
        let err = RawConfig::load(None, env(&[("TESSERA_STORE_SYNC_ISSUANCE", "sometimes")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TESSERA_STORE_SYNC_ISSUANCE"), "{err}");
    }

    #[test]
    fn names_bad_keys_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, "[signin]\nsesion_ttl_secs = 600\n").unwrap();
        let err = RawConfig::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(err.contains("sesion_ttl_secs"), "{err}");
        let err = RawConfig::load(None, env(&[("TESSERA_SIGNIN_SESSION_TTL_SECS", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TESSERA_SIGNIN_SESSION_TTL_SECS"), "{err}");
        let err = RawConfig::load(None, env(&[("TESSERA_NOPE", "1")])).unwrap_err().to_string();
        assert!(err.contains("TESSERA_NOPE"), "{err}");
        let raw = RawConfig { listen: "nowhere".to_owned(), ..RawConfig::default() };
        assert!(raw.validate().unwrap_err().to_string().starts_with("listen:"));
        let raw = RawConfig { database_url: "mysql://x".to_owned(), ..RawConfig::default() };
        assert!(raw.validate().unwrap_err().to_string().starts_with("database_url:"));
    }

    #[test]
    fn the_default_public_url_is_the_listen_address() {
        let config = RawConfig::default().validate().unwrap();
        assert_eq!(config.public_url, "http://127.0.0.1:8080");
        assert!(config.public_url_from_listen);
        let with = |listen: &str| {
            RawConfig { listen: listen.to_owned(), ..RawConfig::default() }.validate().unwrap()
        };
        assert_eq!(with("0.0.0.0:9000").public_url, "http://127.0.0.1:9000");
        assert_eq!(with("[::]:9000").public_url, "http://[::1]:9000");
        assert_eq!(with("[::1]:9000").public_url, "http://[::1]:9000");
        let config = with("127.0.0.1:0");
        assert_eq!(
            config.bound_to("127.0.0.1:41234".parse().unwrap()).public_url,
            "http://127.0.0.1:41234"
        );
        let raw =
            RawConfig { public_url: "https://id.example.com/".to_owned(), ..RawConfig::default() };
        let config = raw.validate().unwrap();
        assert_eq!(config.public_url, "https://id.example.com");
        assert!(!config.public_url_from_listen);
        assert_eq!(
            config.bound_to("127.0.0.1:41234".parse().unwrap()).public_url,
            "https://id.example.com"
        );
    }

    #[test]
    fn metrics_keys_are_checked() {
        let config = RawConfig::load(
            None,
            env(&[
                ("TESSERA_METRICS_LISTEN", "127.0.0.1:9464"),
                ("TESSERA_METRICS_TOKEN", "scrape-token-0123456789"),
            ]),
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(config.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        let mut raw = RawConfig::default();
        raw.metrics.listen = "nowhere".to_owned();
        assert!(raw.validate().unwrap_err().to_string().starts_with("metrics.listen:"));
        raw.metrics.listen = raw.listen.clone();
        assert!(raw.validate().unwrap_err().to_string().starts_with("metrics.listen:"));
        let mut raw = RawConfig::default();
        for token in ["short", "has a space in the middle", &"x".repeat(257)] {
            raw.metrics.token = token.to_owned();
            assert!(
                raw.validate().unwrap_err().to_string().starts_with("metrics.token:"),
                "{token}"
            );
        }
    }

    #[test]
    fn http_limits_load_and_are_checked() {
        let raw = RawConfig::load(
            None,
            env(&[
                ("TESSERA_HTTP_MAX_CONNECTIONS", "4096"),
                ("TESSERA_HTTP_IDLE_TIMEOUT_MS", "500"),
            ]),
        )
        .unwrap();
        let config = raw.validate().unwrap();
        assert_eq!(config.limits.max_connections, 4096);
        assert_eq!(config.limits.idle_timeout, Duration::from_millis(500));
        assert_eq!(config.limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(config.request_timeout, Duration::from_secs(30));
        let bad = |edit: fn(&mut HttpConfig)| {
            let mut raw = RawConfig::default();
            edit(&mut raw.http);
            raw.validate().unwrap_err().to_string()
        };
        assert!(bad(|h| h.idle_timeout_ms = 0).starts_with("http.idle_timeout_ms:"));
        assert!(bad(|h| h.request_timeout_ms = 3_600_001).starts_with("http.request_timeout_ms:"));
        assert!(bad(|h| h.max_connections = 0).starts_with("http.max_connections:"));
        let err = bad(|h| h.max_connections_per_address = h.max_connections + 1);
        assert!(err.starts_with("http.max_connections_per_address:"), "{err}");
    }
}
