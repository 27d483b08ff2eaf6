//! tessera itself: the release build, its benchmark fixture command, and `serve`.
//!
//! The contract the harness relies on (see docs/benchmarks.md):
//! - `tessera serve --data-dir DIR --listen 127.0.0.1:PORT --public-url http://127.0.0.1:PORT
//!   [--database-url URL]`, ready when `GET /readyz` answers 200;
//! - `tessera admin --data-dir DIR [--database-url URL] dev seed --sessions N --credentials N
//!   --out FILE`, which writes [`Seed`] as JSON.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use tokio::process::Command;

use super::load::Fixtures;
use super::procs::{self, Server};

/// What `admin dev seed --out FILE` writes.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Seed {
    pub(crate) account_email: String,
    pub(crate) password: String,
    /// Up to 1000 samples of the seeded sessions' cookie values.
    pub(crate) session_cookies: Vec<String>,
    pub(crate) cookie_name: String,
    /// Optional: a confidential OAuth client for the token scenarios (they are skipped without it).
    #[serde(default)]
    pub(crate) oauth_client: Option<OAuthClient>,
    /// Optional: a confidential client whose access tokens are ES256 JWTs.
    #[serde(default)]
    pub(crate) jwt_client: Option<OAuthClient>,
    /// Optional: an OAuth 1.0a consumer with an HMAC-SHA1 secret and an access token.
    #[serde(default)]
    pub(crate) oauth1_hmac: Option<OAuth1Consumer>,
    /// Optional: an OAuth 1.0a consumer registered with [`OAUTH1_RSA_CERT`], and an access token.
    #[serde(default)]
    pub(crate) oauth1_rsa: Option<OAuth1Consumer>,
    /// The private key of [`OAUTH1_RSA_CERT`] (PKCS#8 PEM), read by the harness, not the seed.
    #[serde(skip)]
    pub(crate) oauth1_rsa_key: Option<String>,
}

/// What `dev seed --second-account` writes.
#[derive(Debug, Deserialize)]
struct SecondAccount {
    account_email: String,
    password: String,
    session_cookies: Vec<String>,
}

/// The 1024-bit RSA certificate and key (the crypto crate's test fixtures) of the RSA-SHA1
/// consumer, relative to the workspace root.
pub(crate) const OAUTH1_RSA_CERT: &str = "crates/crypto/tests/fixtures/authsub-1024.cert.pem";
pub(crate) const OAUTH1_RSA_KEY: &str = "crates/crypto/tests/fixtures/authsub-1024.key.pem";

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct OAuth1Consumer {
    pub(crate) consumer_key: String,
    #[serde(default)]
    pub(crate) consumer_secret: Option<String>,
    pub(crate) token: String,
    pub(crate) token_secret: String,
    /// The resource URL the access token's scope covers.
    pub(crate) resource: String,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct OAuthClient {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    #[serde(default)]
    pub(crate) redirect_uri: Option<String>,
}

impl Seed {
    pub(crate) fn fixtures(&self) -> Fixtures {
        let mut f = super::common_fixtures();
        f.set("email", self.account_email.clone());
        f.set("password", self.password.clone());
        f.set("cookie_name", self.cookie_name.clone());
        f.set_list("session_cookie", self.session_cookies.clone());
        if let Some(c) = &self.oauth_client {
            f.set("client_id", c.client_id.clone());
            f.set("client_secret", c.client_secret.clone());
            f.set(
                "redirect_uri",
                c.redirect_uri.clone().unwrap_or_else(|| super::peer::REDIRECT_URI.into()),
            );
        }
        if let Some(c) = &self.jwt_client {
            f.set("jwt_client_id", c.client_id.clone());
            f.set("jwt_client_secret", c.client_secret.clone());
        }
        if let Some(c) = &self.oauth1_hmac
            && let Some(secret) = &c.consumer_secret
        {
            f.set("oauth1_consumer_key", c.consumer_key.clone());
            f.set("oauth1_consumer_secret", secret.clone());
            f.set("oauth1_token", c.token.clone());
            f.set("oauth1_token_secret", c.token_secret.clone());
            f.set("oauth1_resource", c.resource.clone());
        }
        if let (Some(c), Some(key)) = (&self.oauth1_rsa, &self.oauth1_rsa_key) {
            f.set("oauth1_rsa_consumer_key", c.consumer_key.clone());
            f.set("oauth1_rsa_token", c.token.clone());
            f.set("oauth1_rsa_key", key.clone());
            f.set("oauth1_resource", c.resource.clone());
        }
        f
    }
}

pub(crate) struct Tessera {
    pub(crate) bin: PathBuf,
    /// The workspace root (the OAuth 1.0a RSA fixtures live there).
    pub(crate) root: PathBuf,
    /// `tessera-client`'s example that measures in-process ID-token verification.
    pub(crate) verify_rate: PathBuf,
}

impl Tessera {
    /// `cargo build --release -p tessera` (or the dev profile), output to the terminal.
    pub(crate) async fn build(
        root: &Path,
        target_dir: &Path,
        dev: bool,
    ) -> anyhow::Result<Tessera> {
        let (flags, folder) = super::profile(dev);
        eprintln!(
            "bench: cargo build {} -p tessera -p tessera-client --bins --example verify_rate",
            flags.join(" ")
        );
        let status = Command::new(super::cargo())
            .arg("build")
            .args(flags)
            .args(["-p", "tessera", "-p", "tessera-client", "--bins", "--example", "verify_rate"])
            .current_dir(root)
            .status()
            .await
            .context("running cargo")?;
        if !status.success() {
            bail!("cargo build -p tessera failed ({status})");
        }
        let bin = target_dir.join(folder).join("tessera");
        let verify_rate = target_dir.join(folder).join("examples").join("verify_rate");
        for made in [&bin, &verify_rate] {
            if !made.exists() {
                bail!("the build made no {}", made.display());
            }
        }
        Ok(Tessera { bin, root: root.to_owned(), verify_rate })
    }

    fn admin(&self, data_dir: &Path, database_url: Option<&str>) -> Command {
        let mut cmd = clean_command(&self.bin);
        cmd.arg("admin").arg("--data-dir").arg(data_dir);
        if let Some(url) = database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd
    }

    /// Seeds `sessions` live sessions and `credentials` other credentials; returns the fixture
    /// file's contents and how long seeding took.
    pub(crate) async fn seed(
        &self,
        data_dir: &Path,
        database_url: Option<&str>,
        sessions: u64,
        credentials: u64,
    ) -> anyhow::Result<(Seed, Duration)> {
        std::fs::create_dir_all(data_dir)?;
        let out = data_dir.with_extension("seed.json");
        let _ = std::fs::remove_file(&out);
        let mut cmd = self.admin(data_dir, database_url);
        cmd.args([
            "dev",
            "seed",
            "--sessions",
            &sessions.to_string(),
            "--credentials",
            &credentials.to_string(),
            "--out",
        ])
        .arg(&out)
        .arg("--oauth1-rsa-cert")
        .arg(self.root.join(OAUTH1_RSA_CERT));
        let shown = format!(
            "tessera admin --data-dir {} dev seed --sessions {sessions} --credentials {credentials} --out {} --oauth1-rsa-cert {OAUTH1_RSA_CERT}",
            data_dir.display(),
            out.display()
        );
        let started = Instant::now();
        let (ok, stdout, stderr) = procs::output(cmd, Duration::from_secs(30 * 60)).await?;
        let took = started.elapsed();
        if !ok {
            bail!(
                "`{shown}` failed{}:\n{}",
                missing_hint(&stderr),
                tail(&format!("{stdout}\n{stderr}"), 12)
            );
        }
        let text = std::fs::read_to_string(&out).with_context(|| {
            format!("`{shown}` succeeded but wrote no {}: this tessera build lacks the benchmark fixture command", out.display())
        })?;
        let mut seed: Seed = serde_json::from_str(&text).with_context(|| {
            format!("{} is not the expected fixture JSON (account_email, password, session_cookies, cookie_name)", out.display())
        })?;
        if seed.session_cookies.is_empty() {
            bail!("{} lists no session cookies", out.display());
        }
        if seed.oauth1_rsa.is_some() {
            let key = self.root.join(OAUTH1_RSA_KEY);
            seed.oauth1_rsa_key = Some(
                std::fs::read_to_string(&key)
                    .with_context(|| format!("reading {}", key.display()))?,
            );
        }
        Ok((seed, took))
    }

    /// Seeds a second bench account with `sessions` sessions on a database seeded before, and
    /// returns `first`'s fixtures with that account's in place of the first account's.
    pub(crate) async fn seed_second(
        &self,
        data_dir: &Path,
        database_url: Option<&str>,
        sessions: u64,
        first: &Seed,
    ) -> anyhow::Result<Seed> {
        let out = data_dir.with_extension("seed-2.json");
        let _ = std::fs::remove_file(&out);
        let mut cmd = self.admin(data_dir, database_url);
        cmd.args(["dev", "seed", "--second-account", "--sessions", &sessions.to_string()])
            .arg("--out")
            .arg(&out);
        let (ok, stdout, stderr) = procs::output(cmd, Duration::from_secs(30 * 60)).await?;
        if !ok {
            bail!(
                "`tessera admin dev seed --second-account` failed{}:\n{}",
                missing_hint(&stderr),
                tail(&format!("{stdout}\n{stderr}"), 12)
            );
        }
        let text = std::fs::read_to_string(&out)
            .with_context(|| format!("`dev seed --second-account` wrote no {}", out.display()))?;
        let second: SecondAccount = serde_json::from_str(&text)
            .with_context(|| format!("{} is not the expected fixture JSON", out.display()))?;
        if second.session_cookies.is_empty() {
            bail!("{} lists no session cookies", out.display());
        }
        let mut seed = first.clone();
        seed.account_email = second.account_email;
        seed.password = second.password;
        seed.session_cookies = second.session_cookies;
        Ok(seed)
    }

    /// Seeds `devices` push devices (and one session, which the command needs for its account);
    /// returns the `push` fixtures and how long seeding took.
    pub(crate) async fn seed_push(
        &self,
        data_dir: &Path,
        database_url: Option<&str>,
        devices: u64,
    ) -> anyhow::Result<(super::push::PushSeed, Duration)> {
        std::fs::create_dir_all(data_dir)?;
        let out = data_dir.with_extension("seed.json");
        let _ = std::fs::remove_file(&out);
        let mut cmd = self.admin(data_dir, database_url);
        cmd.args(["dev", "seed", "--sessions", "1", "--push-devices", &devices.to_string()])
            .arg("--out")
            .arg(&out);
        let started = Instant::now();
        let (ok, stdout, stderr) = procs::output(cmd, Duration::from_secs(30 * 60)).await?;
        let took = started.elapsed();
        if !ok {
            bail!(
                "`tessera admin dev seed --push-devices {devices}` failed{}:\n{}",
                missing_hint(&stderr),
                tail(&format!("{stdout}\n{stderr}"), 12)
            );
        }
        let seed = super::push::read_seed(&out)?;
        if seed.devices.len() as u64 != devices {
            bail!("asked for {devices} push devices, the seed file lists {}", seed.devices.len());
        }
        Ok((seed, took))
    }

    pub(crate) fn serve_cmd(
        &self,
        data_dir: &Path,
        port: u16,
        database_url: Option<&str>,
    ) -> Command {
        let mut cmd = clean_command(&self.bin);
        cmd.arg("serve").arg("--data-dir").arg(data_dir).args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--public-url",
            &format!("http://127.0.0.1:{port}"),
        ]);
        if let Some(url) = database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd
    }

    /// Starts `serve` on a free port; returns the server and its start-to-ready time.
    pub(crate) async fn start(
        &self,
        label: &str,
        data_dir: &Path,
        database_url: Option<&str>,
        log: &Path,
    ) -> anyhow::Result<(Server, Duration)> {
        self.start_with_env(label, data_dir, database_url, log, &[]).await
    }

    /// [`Tessera::start`] with environment variables set for the server (e.g. `TESSERA_LOG`).
    pub(crate) async fn start_with_env(
        &self,
        label: &str,
        data_dir: &Path,
        database_url: Option<&str>,
        log: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<(Server, Duration)> {
        std::fs::create_dir_all(data_dir)?;
        let port = procs::free_port()?;
        let mut cmd = self.serve_cmd(data_dir, port, database_url);
        cmd.envs(env.iter().copied());
        Server::start(label, cmd, procs::loopback(port), log, "/readyz", Duration::from_secs(60))
            .await
    }
}

/// A tessera command with the default configuration: no TESSERA_* variable of the caller's shell
/// (a TESSERA_DATABASE_URL would turn the SQLite runs into PostgreSQL ones).
fn clean_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TESSERA_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn missing_hint(stderr: &str) -> &'static str {
    let s = stderr.to_ascii_lowercase();
    if s.contains("unrecognized subcommand")
        || s.contains("unexpected argument")
        || s.contains("invalid subcommand")
    {
        " (this tessera build does not have the command)"
    } else {
        ""
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_file_with_and_without_an_oauth_client() -> anyhow::Result<()> {
        let plain: Seed = serde_json::from_str(
            r#"{"account_email":"bench@example.test","password":"pw","session_cookies":["a","b"],"cookie_name":"TSID"}"#,
        )?;
        let f = plain.fixtures();
        assert_eq!(f.0["session_cookie"], ["a", "b"]);
        assert_eq!(f.0["email"], ["bench@example.test"]);
        assert!(!f.has("client_id"));
        let full: Seed = serde_json::from_str(
            r#"{"account_email":"e","password":"p","session_cookies":["a"],"cookie_name":"TSID",
                "oauth_client":{"client_id":"c","client_secret":"s"}}"#,
        )?;
        let f = full.fixtures();
        assert_eq!(f.0["client_id"], ["c"]);
        assert_eq!(f.0["redirect_uri"], [super::super::peer::REDIRECT_URI]);
        assert_eq!(
            missing_hint("error: unrecognized subcommand 'dev'"),
            " (this tessera build does not have the command)"
        );
        Ok(())
    }
}
