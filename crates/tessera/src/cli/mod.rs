//! Command-line parsing and the commands themselves. The only module that prints.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod admin;
mod admin_seed;
mod logging;
mod push_listen;
mod push_send;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::format_err;
use clap::{Parser, Subcommand};
use tessera::{Config, RawConfig, Server, StartOptions};

#[derive(Debug, Parser)]
#[command(name = "tessera", version, about = "A self-hosted accounts service")]
pub(crate) struct Args {
    /// Configuration file (TOML); every key can also be set with a TESSERA_… environment variable.
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory for the embedded database and generated keys.
    #[arg(long, global = true)]
    data_dir: Option<String>,
    /// PostgreSQL URL (postgres://…) instead of embedded SQLite.
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on.
        #[arg(long)]
        listen: Option<String>,
        /// The URL people and clients reach this server at (also the token issuer).
        #[arg(long)]
        public_url: Option<String>,
        /// Seed a demo account and project, and print what to try.
        #[arg(long)]
        demo: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Check the configuration and exit.
    CheckConfig,
    /// Administer accounts, domains, projects, keys and the audit log.
    Admin(admin::AdminArgs),
    /// Check tokens the way a back-end does.
    Token(token::TokenArgs),
    /// Push messaging tools.
    #[command(subcommand)]
    Push(PushCommand),
}

#[derive(Debug, Subcommand)]
enum PushCommand {
    /// Connect as a device, print each message as one JSON line, and acknowledge it.
    Listen(push_listen::ListenArgs),
    /// Send a GCM message to registration ids or a topic, as an application server does.
    Send(push_send::SendArgs),
}

/// Loads the configuration: defaults, file, environment, then flags.
fn load_config(
    args: &Args,
    listen: Option<&str>,
    public_url: Option<&str>,
) -> anyhow::Result<Config> {
    let env: Vec<(String, String)> =
        std::env::vars().filter(|(k, _)| k != "TESSERA_CONFIG").collect();
    let mut raw = RawConfig::load(args.config.as_deref(), env.into_iter())?;
    if let Some(dir) = &args.data_dir {
        raw.data_dir = dir.clone();
    }
    if let Some(url) = &args.database_url {
        raw.database_url = url.clone();
    }
    if let Some(listen) = listen {
        raw.listen = listen.to_owned();
    }
    if let Some(url) = public_url {
        raw.public_url = url.to_owned();
    }
    raw.validate()
}

/// The server's log (see [`logging`]); lines still waiting are written when the guard is dropped.
fn init_logging(config: &Config) -> logging::LogGuard {
    let filter = std::env::var("TESSERA_LOG").unwrap_or_else(|_| config.raw.log.level.clone());
    logging::init(&filter, config.raw.log.format == "json")
}

/// Says on stderr why the command could not run, and fails.
pub(crate) fn fail(why: std::fmt::Arguments<'_>) -> ExitCode {
    eprintln!("tessera: {why}");
    ExitCode::FAILURE
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        Command::Serve { listen, public_url, demo } => {
            let started = Instant::now();
            let config = load_config(&args, listen.as_deref(), public_url.as_deref())?;
            let _log = init_logging(&config);
            let mut server = Server::start(
                &config,
                StartOptions { demo: *demo, sweeper: true, ..StartOptions::default() },
            )
            .await?;
            let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
            tracing::info!(target: "tessera::startup", addr = %server.addr, backend = server.ctx.store.backend(), ready_ms, "ready");
            print_welcome(&config, &server);
            let shutdown = server.shutdown_handle();
            tokio::select! {
                res = server.wait() => res?,
                () = shutdown_signal() => {
                    tracing::info!(target: "tessera::startup", "shutting down");
                    if let Some(tx) = shutdown { let _ = tx.send(()); }
                    server.wait().await?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let config = load_config(&args, None, None)?;
            let store = tessera::open_store(&config).await?;
            println!("migrations applied ({})", tessera_store::Store::backend(&store));
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => {
            let config = load_config(&args, None, None)?;
            println!("configuration is valid");
            println!("  listen      {}", config.listen);
            match config.public_url_from_listen {
                true => println!("  public_url  {} (the listen address)", config.public_url),
                false => println!("  public_url  {}", config.public_url),
            }
            match &config.database_url {
                Some(_) => println!("  database    postgresql"),
                None => println!("  database    sqlite in {}", config.data_dir.display()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(token_args) => {
            let config = load_config(&args, None, None)?;
            token::run(&config.public_url, token_args).await
        }
        Command::Push(PushCommand::Send(send_args)) => push_send::run(send_args).await,
        Command::Push(PushCommand::Listen(listen_args)) => push_listen::run(listen_args).await,
        Command::Admin(admin_args) => {
            let config = load_config(&args, None, None)?;
            admin::run(&config, admin_args).await
        }
    }
}

fn print_welcome(config: &Config, server: &Server) {
    let base = &*server.ctx.public_url;
    println!("tessera is listening on http://{} (public URL {base})", server.addr);
    println!("Open {base}/accounts/ServiceLogin to sign in.");
    if let Some(link) = &server.report.setup_link {
        println!();
        println!("No administrator exists yet. Create one with this one-time link:");
        println!("  {link}");
    }
    if let Some(demo) = &server.report.demo {
        println!();
        println!("Demo mode. Sign in as {} with password {}", demo.email, demo.password);
        println!("Try:");
        println!(
            "  {base}/accounts/ServiceLogin      sign in (then 2-step, app passwords, sessions on the account page)"
        );
        println!("  {base}/account                    the account page");
        println!(
            "  {base}/accounts/ListAccounts      the accounts signed in in this browser (JSON)"
        );
        match (server.metrics_addr, config.raw.metrics.token.is_empty()) {
            (Some(addr), _) => println!("  http://{addr}/metrics        Prometheus metrics"),
            (None, false) => println!(
                "  {base}/metrics                    Prometheus metrics (with the metrics.token as bearer token)"
            ),
            (None, true) => (),
        }
        println!(
            "  {base}/console                    the developer console (projects and clients)"
        );
        println!();
        println!("OAuth 2.0 with the demo web client ({}):", demo.web_client_id);
        match &demo.web_client_secret {
            Some(secret) => println!("  client secret (shown this once): {secret}"),
            None => println!(
                "  client secret: shown when the demo was first seeded (rotate it in the console)"
            ),
        }
        println!(
            "  {base}/o/oauth2/auth?response_type=code&client_id={}&redirect_uri={}&scope=openid%20email&access_type=offline",
            demo.web_client_id,
            percent_encode(&demo.web_redirect_uri)
        );
        println!(
            "  then: curl -u CLIENT_ID:SECRET -d grant_type=authorization_code -d code=CODE -d redirect_uri={} {base}/o/oauth2/token",
            demo.web_redirect_uri
        );
        println!(
            "  and:  curl -u CLIENT_ID:SECRET -d grant_type=client_credentials {base}/o/oauth2/token"
        );
        println!();
        println!("The device flow with the demo TV client:");
        println!(
            "  curl -d client_id={} -d scope=email {base}/o/oauth2/device/code",
            demo.device_client_id
        );
        println!("  then open {base}/device and enter the user code");
        println!();
        println!(
            "ClientLogin and AuthSub with the demo service {} (scope {}):",
            demo.service, demo.service_scope
        );
        println!(
            "  curl -d Email={} -d Passwd={} -d service={} -d source=tessera-demo {base}/accounts/ClientLogin",
            percent_encode(&demo.email),
            percent_encode(&demo.password),
            demo.service
        );
        println!(
            "  then: curl -H 'Content-Type: application/json' -d '{{\"authorization\": \"GoogleLogin auth=AUTH\"}}' {base}/accounts/caller"
        );
        println!(
            "  {base}/accounts/AuthSubRequest?next={}&scope={}&session=1",
            percent_encode(&demo.authsub_next),
            percent_encode(&demo.service_scope)
        );
        println!(
            "  then, with the token= of the address Allow leads to: curl -H 'Authorization: AuthSub token=\"TOKEN\"' {base}/accounts/AuthSubSessionToken"
        );
        if let Some(secret) = &demo.oauth1_secret {
            println!(
                "OAuth 1.0a (HMAC-SHA1): consumer key {}, consumer secret {secret} (shown once)",
                demo.oauth1_consumer
            );
            println!(
                "  try it: sign GET {base}/accounts/OAuthGetRequestToken?scope={} with oauth_callback=oob, then open {base}/accounts/OAuthAuthorizeToken?oauth_token=TOKEN",
                percent_encode(&demo.service_scope)
            );
        }
        if config.raw.legacy.openid2 {
            println!();
            println!("OpenID 2.0: the identifier {base}/accounts/o8/id");
            println!(
                "  try it: give that identifier to any OpenID 2.0 relying party, or open the XRDS with"
            );
            println!(
                "  curl -H 'Accept: application/xrds+xml' {base}/accounts/o8/id   (endpoint {base}/accounts/o8/ud)"
            );
        }
        println!();
        println!("Web single sign-on across two hosts with the example feeds services:");
        for (name, public) in &demo.web_services {
            let listen = public.trim_start_matches("http://");
            println!(
                "  cargo run -p tessera-example-feeds -- --accounts {base} --service {name} --listen {listen}"
            );
        }
        for (name, public) in &demo.web_services {
            println!("  {public}/    ({name}: sign in at one, then open the other: no password)");
        }
        println!(
            "  sign out at either (its link goes to {base}/accounts/Logout?continue=…): both are signed out"
        );
        println!();
        println!(
            "Android device login (the demo Android app {}, package {}):",
            demo.android_client_id, demo.android_package
        );
        println!(
            "  password key (base64, clients encrypt EncryptedPasswd to it): {base}/auth/passwd_key"
        );
        println!(
            "  master login (plain Passwd needs https or [device] plain_passwd = true): curl -d Email={} -d Passwd={} -d service=ac2dm -d androidId=3a5f0b7c9d1e2f40 {base}/auth",
            percent_encode(&demo.email),
            percent_encode(&demo.password)
        );
        println!(
            "  then, with its Token=: curl -d Token=TOKEN -d androidId=3a5f0b7c9d1e2f40 -d app={} -d client_sig={} -d has_permission=1 --data-urlencode 'service=oauth2:email' {base}/auth",
            demo.android_package, demo.android_cert_sha1
        );
        println!(
            "  or sign in on the web at {base}/EmbeddedSetup; with its oauth_token cookie (one use, 10 minutes): curl --data-urlencode Token=COOKIE -d ACCESS_TOKEN=1 -d service=ac2dm -d androidId=3a5f0b7c9d1e2f40 {base}/auth"
        );
        println!("  devices, and \"Sign out everywhere\": {base}/account");
        println!();
        print_demo_push(base, &demo.push);
        println!();
        println!(
            "Discovery: {base}/.well-known/openid-configuration   Keys: {base}/oauth2/v3/certs"
        );

        println!("  tessera admin account list --data-dir {}", config.data_dir.display());
        println!(
            "  tessera admin audit --account {} --data-dir {}",
            demo.email,
            config.data_dir.display()
        );
    }
}

fn print_demo_push(base: &str, push: &tessera::demo::DemoPush) {
    println!("Push messaging (C2DM/GCM) as sender id {}:", push.sender_id);
    let (Some(key), Some(device)) = (&push.api_key, &push.device) else {
        println!(
            "  the API key and the demo device were shown when the demo was first seeded (create a key in the console)"
        );
        return;
    };
    println!("  API key (shown this once): {key}");
    println!(
        "  curl -H 'Authorization: key={key}' -H 'Content-Type: application/json' -d '{{\"to\":\"{}\",\"data\":{{\"hello\":\"world\"}}}}' {base}/gcm/send",
        device.registration_id
    );
    println!(
        "  tessera push listen --server {base} --device {} --credential {} --registration {}",
        device.id, device.credential, device.registration_id
    );
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => (),
        () = term => (),
    }
}

/// Reads a password from standard input (one line, newline trimmed).
pub(crate) fn read_password_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(format_err!("no password on standard input"));
    }
    Ok(password)
}
