//! Configuration: defaults, then the TOML file, then `TESSERA_…` environment variables, then flags.
//! The raw form (`RawConfig`) holds every key with its default; `validate` turns it into `Config`
//! with parsed URLs and resolved paths, naming the key in every complaint.

use std::path::{Path, PathBuf};

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

/// `[legacy]`: switches the 2012-era account protocols off per deployment (both on by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LegacyConfig {
    pub authsub: bool,
    pub clientlogin: bool,
}

impl LegacyConfig {
    /// The protocols switched off here; their credentials stop working everywhere.
    fn disabled_protocols(&self) -> Vec<tessera_domain::credentials::Protocol> {
        use tessera_domain::credentials::Protocol;
        [(Protocol::AuthSub, self.authsub), (Protocol::ClientLogin, self.clientlogin)]
            .into_iter()
            .filter_map(|(protocol, on)| (!on).then_some(protocol))
            .collect()
    }
}

impl Default for LegacyConfig {
    fn default() -> LegacyConfig {
        LegacyConfig { authsub: true, clientlogin: true }
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
}

impl Default for RawConfig {
    fn default() -> RawConfig {
        RawConfig {
            version: 1,
            listen: "127.0.0.1:8080".to_owned(),
            public_url: "http://localhost:8080".to_owned(),
            data_dir: "./tessera-data".to_owned(),
            database_url: String::new(),
            kek: String::new(),
            kek_file: String::new(),
            log: LogConfig::default(),
            password: PasswordConfig::default(),
            signin: SigninConfig::default(),
            store: StoreConfig::default(),
            legacy: LegacyConfig::default(),
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
        }
    }
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
        let mut value =
            toml::Value::try_from(RawConfig::default()).context("default configuration")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let from_file: toml::Value = toml::from_str(&text)
                .map_err(|err| format_err!("{}: {}", path.display(), err.message()))?;
            // Parse once on its own to get unknown-key errors that name the key.
            let _: RawConfig = toml::from_str(&text)
                .map_err(|err| format_err!("{}: {}", path.display(), err.message()))?;
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
        let public_url = self.public_url.trim_end_matches('/').to_owned();
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
        if !self.kek.is_empty() {
            tessera_crypto::kek::Kek::parse(&self.kek)
                .map_err(|_| format_err!("kek: must be base64 of exactly 32 bytes"))?;
        }
        let policy = Policy {
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
            disabled_protocols: self.legacy.disabled_protocols(),
            session_ttl_secs: s.session_ttl_secs,
            persistent_session_ttl_secs: s.persistent_session_ttl_secs,
            ..Policy::default()
        };
        Ok(Config { raw: self.clone(), listen, public_url, data_dir, database_url, policy })
    }
}

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub raw: RawConfig,
    pub listen: std::net::SocketAddr,
    pub public_url: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub policy: Policy,
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
}
