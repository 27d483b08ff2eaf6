//! `tessera admin …`: accounts, domains, projects, keys and the audit log, straight against the store
//! (safe while servers run). `--json` prints machine-readable output; errors exit non-zero.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::format_err;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tessera::Config;
use tessera_crypto::random::SystemRng;
use tessera_domain::Ctx;
use tessera_domain::accounts::NewAccount;
use tessera_domain::audit::Actor;
use tessera_store::{AccountRecord, AccountState};

#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    #[command(subcommand)]
    Account(AccountCommand),
    #[command(subcommand)]
    Domain(DomainCommand),
    #[command(subcommand)]
    Project(ProjectCommand),
    /// OAuth 2.0 clients of a project.
    #[command(subcommand)]
    Client(ClientCommand),
    #[command(subcommand)]
    Keys(KeysCommand),
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Android device login.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Consumers: one registration of a domain serves AuthSub and OAuth 1.0 (`authsub` is an
    /// alias).
    #[command(subcommand, alias = "authsub")]
    Consumer(AuthsubCommand),
    #[command(subcommand)]
    Legacy(LegacyCommand),
    /// Push messaging: a project's API keys, install credentials.
    #[command(subcommand)]
    Push(PushCommand),
    /// The front-end token proxy: front-end apps and the resources they may reach.
    #[command(subcommand)]
    Proxy(ProxyCommand),
    /// Security events, newest first.
    Audit {
        #[arg(long)]
        account: Option<String>,
        /// Unix time, or an age such as 30m, 12h, 7d.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Fixtures for the benchmark harness.
    #[command(subcommand, hide = true)]
    Dev(DevCommand),
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    Add {
        email: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Hosted domain the account belongs to (added with `domain add`).
        #[arg(long)]
        domain: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Make the account an administrator.
        #[arg(long)]
        admin: bool,
    },
    List {
        #[arg(long, default_value_t = 0)]
        offset: u32,
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    Show {
        email: String,
    },
    Disable {
        email: String,
    },
    Enable {
        email: String,
    },
    Delete {
        email: String,
    },
    /// Set the state directly (active, email_unverified, disabled, deleted, must_accept_terms).
    SetState {
        email: String,
        state: String,
    },
    SetPassword {
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DomainCommand {
    Add { name: String },
    List,
}

#[derive(Debug, Subcommand)]
enum ProjectCommand {
    Add {
        name: String,
        #[arg(long)]
        owner: String,
    },
    List,
    /// Mark the project verified (consent pages stop warning), or `--off` to take it back.
    Verify {
        name: String,
        #[arg(long)]
        off: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Register a client; a confidential client's secret is printed once.
    Add {
        #[arg(long)]
        project: String,
        /// web, installed, android, service_account or device.
        #[arg(long)]
        kind: String,
        #[arg(long)]
        name: String,
        /// A redirect URI (repeat for several).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        #[arg(long)]
        android_package: Option<String>,
        #[arg(long)]
        android_cert_sha1: Option<String>,
        /// Allow response_type token / id_token.
        #[arg(long)]
        allow_implicit: bool,
        /// Issue RS256 JWT access tokens (RFC 9068) instead of opaque ones.
        #[arg(long)]
        jwt_access_tokens: bool,
    },
    List {
        #[arg(long)]
        project: String,
    },
    Show {
        client_id: String,
    },
    /// Delete the client and revoke every grant to it.
    Delete {
        client_id: String,
    },
    /// Replace the secret; the old one stops working at once.
    RotateSecret {
        client_id: String,
    },
    /// A new key pair for a service account; the private key is printed once.
    AddKey {
        client_id: String,
    },
    /// Register a service account's own public key (PEM: PUBLIC KEY or CERTIFICATE, RSA ≥ 2048).
    UploadKey {
        client_id: String,
        #[arg(long)]
        public_key: std::path::PathBuf,
    },
    /// Remove one of a service account's keys.
    RemoveKey {
        client_id: String,
        kid: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuthsubCommand {
    /// Register a consumer (an AuthSub application and OAuth 1.0 consumer): its domain, the
    /// prefix its AuthSub `next` URLs must start with (default `https://DOMAIN/`), optionally its
    /// X.509 certificate (PEM, RSA of at least 1024 bits) for secure AuthSub tokens and RSA-SHA1,
    /// and with `--hmac` an OAuth 1.0 HMAC-SHA1 consumer secret, printed once.
    Add {
        domain: String,
        #[arg(long)]
        next_prefix: Option<String>,
        /// Mint an HMAC-SHA1 consumer secret (shown once; kept sealed).
        #[arg(long)]
        hmac: bool,
        #[arg(long)]
        cert: Option<std::path::PathBuf>,
        /// The account owning the registration's project (default: the first administrator).
        #[arg(long)]
        owner: Option<String>,
    },
    /// Two-legged OAuth 1.0: let a registered consumer act for every account of a hosted domain
    /// (`xoauth_requestor_id=user@DOMAIN`) within the scopes given; again replaces the scopes.
    AuthorizeDomain {
        domain: String,
        consumer: String,
        /// A scope (a URL prefix of a service accepting OAuth 1.0 or AuthSub); repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
    /// Revoke a domain's two-legged authorization of a consumer.
    DeauthorizeDomain { domain: String, consumer: String },
    /// The two-legged authorizations of one domain, or of all, revoked ones too.
    DomainGrants { domain: Option<String> },
}

#[derive(Debug, Subcommand)]
enum LegacyCommand {
    /// Which applications still use AuthSub, ClientLogin, OAuth 1.0 or OpenID 2.0: live grants,
    /// accounts, last use, requests and deprecation dates.
    Usage,
    /// Set one application's deprecation dates for one protocol (unix seconds or RFC 3339;
    /// without --client, show the protocol's dates from the configuration). Neither date clears
    /// the application's own dates.
    Deprecate {
        /// authsub, clientlogin, oauth1 or openid2.
        #[arg(long)]
        protocol: String,
        /// The application: a registered client id, ClientLogin `source`, AuthSub `next` host or
        /// OpenID 2.0 realm.
        #[arg(long)]
        client: Option<String>,
        #[arg(long)]
        warn_from: Option<String>,
        #[arg(long)]
        refuse_from: Option<String>,
    },
}

/// The legacy protocols tessera serves, which a service may accept. (The store knows `oauth1`
/// too, for when OAuth 1.0 is served; until then a service accepting it would promise a protocol
/// no endpoint speaks.)
const SERVED_PROTOCOLS: [&str; 2] = tessera_domain::services::LEGACY_PROTOCOLS;

#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// Register a service: a ClientLogin service name and the scope prefixes it owns.
    Add {
        name: String,
        #[arg(long)]
        display_name: String,
        /// A scope URL prefix (repeat for several).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Lifetime of ClientLogin Auth tokens, in seconds (default 14 days).
        #[arg(long)]
        clientlogin_ttl_secs: Option<i64>,
        /// A legacy protocol it accepts (repeat; default both).
        #[arg(long = "protocol", value_parser = SERVED_PROTOCOLS)]
        protocols: Vec<String>,
    },
    /// Set a service's web sign-on: where `continue` may return to and where sign-outs go
    /// (replaces what was set; no --prefix switches web sign-on off).
    Web {
        name: String,
        /// A URL prefix a `continue` may start with, ending in '/' (repeat for several).
        #[arg(long = "prefix")]
        prefixes: Vec<String>,
        /// Front-channel logout URL, loaded by the browser on the sign-out page.
        #[arg(long)]
        logout_url: Option<String>,
        /// Back-channel logout URL, to which tessera POSTs each sign-out.
        #[arg(long)]
        backchannel_logout_url: Option<String>,
    },
    List,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    List,
    /// Retire the signing key, promote the published next key, publish a new next key.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Retire the password-encryption key and publish a new one; the retired key keeps opening
    /// passwords for a while.
    RotateKey,
}

#[derive(Debug, Subcommand)]
enum PushCommand {
    /// A project's push API keys (`Authorization: key=` at `/gcm/send`).
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Revoke an install credential (read from standard input), and with it the device: its
    /// registration ids answer NotRegistered.
    RevokeInstall,
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Create a key; it is printed once.
    Create {
        /// The project's name or id.
        #[arg(long)]
        project: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// The project's live keys (their ids, never the keys).
    List {
        #[arg(long)]
        project: String,
    },
    /// Revoke a key by its id (as `list` shows it).
    Revoke {
        #[arg(long)]
        project: String,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ProxyCommand {
    /// Front-end apps (single-page apps whose calls tessera makes with the held tokens).
    #[command(subcommand)]
    App(ProxyAppCommand),
}

#[derive(Debug, Subcommand)]
enum ProxyAppCommand {
    /// Register a front-end app; prints its client id.
    Add {
        /// The project's name or id.
        #[arg(long)]
        project: String,
        #[arg(long)]
        name: String,
        /// An origin the front-end is served from (`https://app.example`); repeat for more.
        #[arg(long = "origin", required = true)]
        origins: Vec<String>,
        /// A resource prefix and the scopes the proxy uses there, space-separated, optionally
        /// after the protocol (`oauth2`, the default, `authsub`, or `oauth1` followed by the
        /// consumer key the proxy signs as):
        /// `"https://api.example/feeds/ https://api.example/feeds/"`; repeat for more.
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
    },
    /// A project's front-end apps with their origins and prefixes.
    List {
        #[arg(long)]
        project: String,
    },
    /// Remove a front-end app: its grants and the tokens held for it are revoked.
    Remove { client_id: String },
}

async fn proxy(ctx: &Ctx, json_mode: bool, command: &ProxyCommand) -> anyhow::Result<()> {
    let ProxyCommand::App(command) = command;
    match command {
        ProxyAppCommand::Add { project, name, origins, targets } => {
            let project = project_named(ctx, project).await?;
            let targets = targets
                .iter()
                .map(|it| tessera_domain::proxy::parse_target(it))
                .collect::<Result<_, _>>()?;
            let new = tessera_domain::proxy::NewFrontEnd {
                name: name.clone(),
                origins: origins.clone(),
                targets,
            };
            let client = tessera_domain::proxy::register(ctx, &project, new, &Actor::Cli).await?;
            let id = client.id().to_owned();
            print(json_mode, &json!({ "client_id": id, "project": project.id }), || id.clone());
        }
        ProxyAppCommand::List { project } => {
            let project = project_named(ctx, project).await?;
            let apps = tessera_domain::proxy::list(ctx, &project.id).await?;
            let value = json!(apps
                .iter()
                .map(|(client, app)| json!({
                    "client_id": client.id(),
                    "name": client.record.name,
                    "origins": app.origins,
                    "targets": app.targets.iter().map(|it| {
                        let mut target = json!({ "prefix": it.prefix, "protocol": it.protocol.as_str(), "scopes": it.scopes });
                        if let Some(consumer) = &it.consumer {
                            target["consumer"] = json!(consumer);
                        }
                        target
                    }).collect::<Vec<_>>(),
                }))
                .collect::<Vec<_>>());
            print(json_mode, &value, || {
                apps.iter()
                    .map(|(client, app)| {
                        let targets: Vec<String> =
                            app.targets.iter().map(|it| format!("    {}", it.line())).collect();
                        format!(
                            "{}  {}\n    origins: {}\n{}",
                            client.id(),
                            client.record.name,
                            app.origins.join(" "),
                            targets.join("\n")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ProxyAppCommand::Remove { client_id } => {
            tessera_domain::proxy::remove(ctx, client_id, &Actor::Cli)
                .await
                .map_err(|_| format_err!("no front-end app {client_id}"))?;
            print(json_mode, &json!({ "removed": client_id }), || format!("removed {client_id}"));
        }
    }
    Ok(())
}

/// A project named by its name or its id.
async fn project_named(ctx: &Ctx, text: &str) -> anyhow::Result<tessera_store::ProjectRecord> {
    if let Some(project) = ctx.store.projects().get(text).await? {
        return Ok(project);
    }
    tessera_domain::projects::find_by_name(ctx, text)
        .await
        .map_err(|_| format_err!("no project {text}"))
}

async fn push(ctx: &Ctx, json_mode: bool, command: &PushCommand) -> anyhow::Result<()> {
    let actor = Actor::Cli;
    match command {
        PushCommand::ApiKey(ApiKeyCommand::Create { project, name }) => {
            let project = project_named(ctx, project).await?;
            let (info, key) =
                tessera_domain::push::create_api_key_by(ctx, &project.id, name, &actor).await?;
            let value =
                json!({ "project": project.id, "id": info.id, "name": info.name, "key": key });
            print(json_mode, &value, || key.clone());
        }
        PushCommand::ApiKey(ApiKeyCommand::List { project }) => {
            let project = project_named(ctx, project).await?;
            let keys = tessera_domain::push::list_api_keys(ctx, &project.id).await?;
            let value = json!(keys.iter().map(|it| json!({ "id": it.id, "name": it.name, "created_at": it.created_at, "last_used_at": it.last_used_at })).collect::<Vec<_>>());
            print(json_mode, &value, || {
                keys.iter()
                    .map(|it| format!("{}  {}", it.id, it.name))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        PushCommand::ApiKey(ApiKeyCommand::Revoke { project, id }) => {
            let project = project_named(ctx, project).await?;
            if !tessera_domain::push::revoke_api_key_by_id(ctx, &project.id, id, &actor).await? {
                return Err(format_err!("no live API key {id} in project {}", project.name));
            }
            print(json_mode, &json!({ "revoked": id }), || format!("revoked API key {id}"));
        }
        PushCommand::RevokeInstall => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let credential = line.trim();
            if !tessera_domain::push::revoke_install(ctx, credential).await? {
                return Err(format_err!("not a live install credential"));
            }
            print(json_mode, &json!({ "revoked": true }), || "revoked the install".to_owned());
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Seed live sessions and credentials for load tests.
    Seed {
        #[arg(long, default_value_t = 0)]
        sessions: u64,
        #[arg(long, default_value_t = 0)]
        credentials: u64,
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// A certificate (PEM) to register an RSA-SHA1 OAuth 1.0a consumer with.
        #[arg(long)]
        oauth1_rsa_cert: Option<std::path::PathBuf>,
        /// Push devices to register for the bench app, with a push API key to send to them.
        #[arg(long, default_value_t = 0)]
        push_devices: u64,
        /// Seed only a second bench account and its sessions (after a first seed), allowed the
        /// bench clients, for a second set of load-test connections on the same database.
        #[arg(long, conflicts_with_all = ["credentials", "oauth1_rsa_cert", "push_devices"])]
        second_account: bool,
    },
}

fn account_json(account: &AccountRecord) -> Value {
    json!({
        "id": account.id,
        "sub": tessera_domain::accounts::subject(&account.id),
        "email": account.email,
        "name": account.name,
        "domain": account.domain,
        "state": account.state.as_str(),
        "admin": account.is_admin,
        "two_step": account.totp_secret_enc.is_some(),
        "created_at": account.created_at,
    })
}

fn service_json(service: &tessera_store::ServiceRecord) -> Value {
    json!({
        "name": service.name,
        "display_name": service.display_name,
        "scopes": service.scopes.split(' ').collect::<Vec<_>>(),
        "clientlogin_ttl_secs": service.clientlogin_ttl_secs,
        "protocols": service.protocols.split(' ').filter(|it| !it.is_empty()).collect::<Vec<_>>(),
        "web_prefixes": tessera_domain::services::web_prefixes(service),
        "logout_url": service.logout_url,
        "backchannel_logout_url": service.backchannel_logout_url,
    })
}

fn print(json_mode: bool, value: &Value, text: impl FnOnce() -> String) {
    if json_mode {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        println!("{}", text());
    }
}

fn parse_since(now: i64, text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let bad = || format_err!("--since: {text:?} is not a unix time or an age like 30m, 12h, 7d");
    if let Ok(unix) = text.parse::<i64>() {
        return Ok(unix);
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(bad()),
    };
    Ok(now - secs)
}

pub(crate) async fn run(config: &Config, args: &AdminArgs) -> anyhow::Result<ExitCode> {
    let store = tessera::open_store(config).await?;
    let ctx = tessera::context(
        config,
        Arc::new(store),
        Arc::new(tessera::SystemClock),
        Arc::new(SystemRng::new()),
    )?;
    tessera::check_kek(&ctx, config).await?;
    let json_mode = args.json;
    let actor = Actor::Cli;
    match &args.command {
        AdminCommand::Account(command) => account(&ctx, json_mode, command).await?,
        AdminCommand::Domain(DomainCommand::Add { name }) => {
            let domain = tessera_domain::accounts::add_domain(&ctx, name, &actor).await?;
            print(
                json_mode,
                &json!({ "name": domain.name, "created_at": domain.created_at }),
                || format!("added domain {}", domain.name),
            );
        }
        AdminCommand::Domain(DomainCommand::List) => {
            let domains = tessera_domain::accounts::list_domains(&ctx).await?;
            let value = json!(
                domains
                    .iter()
                    .map(|it| json!({ "name": it.name, "created_at": it.created_at }))
                    .collect::<Vec<_>>()
            );
            print(json_mode, &value, || {
                domains.iter().map(|it| it.name.clone()).collect::<Vec<_>>().join("\n")
            });
        }
        AdminCommand::Project(ProjectCommand::Add { name, owner }) => {
            let project = tessera_domain::projects::create(&ctx, name, owner, &actor).await?;
            let value = json!({ "id": project.id, "name": project.name, "owner_account_id": project.owner_account_id });
            print(json_mode, &value, || format!("added project {} ({})", project.name, project.id));
        }
        AdminCommand::Project(ProjectCommand::List) => {
            let projects = tessera_domain::projects::list(&ctx).await?;
            let value = json!(projects.iter().map(|it| json!({ "id": it.id, "name": it.name, "owner_account_id": it.owner_account_id, "verified": it.verified })).collect::<Vec<_>>());
            print(json_mode, &value, || {
                projects
                    .iter()
                    .map(|it| format!("{}  {}", it.id, it.name))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        AdminCommand::Project(ProjectCommand::Verify { name, off }) => {
            tessera_domain::projects::set_verified(&ctx, name, !off, &actor).await?;
            let value = json!({ "name": name, "verified": !off });
            print(json_mode, &value, || {
                format!("project {name} is {}", if *off { "unverified" } else { "verified" })
            });
        }
        AdminCommand::Client(command) => client(&ctx, json_mode, command).await?,
        AdminCommand::Push(command) => push(&ctx, json_mode, command).await?,
        AdminCommand::Proxy(command) => proxy(&ctx, json_mode, command).await?,
        AdminCommand::Service(ServiceCommand::Add {
            name,
            display_name,
            scopes,
            clientlogin_ttl_secs,
            protocols,
        }) => {
            let new = tessera_domain::services::NewService {
                name: name.clone(),
                display_name: display_name.clone(),
                scopes: scopes.clone(),
                clientlogin_ttl_secs: *clientlogin_ttl_secs,
                protocols: Some(match protocols.is_empty() {
                    true => SERVED_PROTOCOLS.map(str::to_owned).to_vec(),
                    false => protocols.clone(),
                }),
            };
            let service = tessera_domain::services::add(&ctx, new, &actor).await?;
            print(json_mode, &service_json(&service), || {
                format!("added service {} ({})", service.name, service.scopes)
            });
        }
        AdminCommand::Consumer(AuthsubCommand::Add { domain, next_prefix, hmac, cert, owner }) => {
            let next_prefix = next_prefix
                .clone()
                .unwrap_or_else(|| format!("https://{}/", domain.to_lowercase()));
            let pem = match cert {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))?,
                ),
                None => None,
            };
            let reg = tessera_domain::authsub::register(
                &ctx,
                domain,
                &next_prefix,
                pem.as_deref(),
                owner.as_deref(),
                &actor,
            )
            .await?;
            let secret = if *hmac {
                Some(tessera_domain::oauth1::mint_consumer_secret(&ctx, &reg.domain, &actor).await?)
            } else {
                None
            };
            let value = json!({ "domain": reg.domain, "next_prefix": reg.next_prefix, "secure": reg.cert_pem.is_some(), "consumer_secret": secret, "created_at": reg.created_at });
            print(json_mode, &value, || {
                let mut out = format!("registered {} (next under {})", reg.domain, reg.next_prefix);
                if let Some(secret) = &secret {
                    out.push_str(&format!(
                        "\nOAuth 1.0 consumer key: {}\nconsumer secret (shown once): {secret}",
                        reg.domain
                    ));
                }
                out
            });
        }
        AdminCommand::Consumer(AuthsubCommand::AuthorizeDomain { domain, consumer, scopes }) => {
            let grant = tessera_domain::oauth1::authorize_domain(
                &ctx, domain, consumer, scopes, None, &actor,
            )
            .await?;
            print(json_mode, &domain_grant_json(&grant), || {
                format!(
                    "{} may act for accounts of {} within: {}",
                    grant.client_id, grant.domain, grant.scopes
                )
            });
        }
        AdminCommand::Consumer(AuthsubCommand::DeauthorizeDomain { domain, consumer }) => {
            let revoked =
                tessera_domain::oauth1::deauthorize_domain(&ctx, domain, consumer, None, &actor)
                    .await?;
            if !revoked {
                anyhow::bail!("{domain} has no live authorization of {consumer}");
            }
            print(
                json_mode,
                &json!({ "domain": domain, "consumer": consumer, "revoked": true }),
                || format!("revoked {domain}'s authorization of {consumer}"),
            );
        }
        AdminCommand::Consumer(AuthsubCommand::DomainGrants { domain }) => {
            let grants = tessera_domain::oauth1::domain_grants(&ctx, domain.as_deref()).await?;
            let value = json!(grants.iter().map(domain_grant_json).collect::<Vec<_>>());
            print(json_mode, &value, || {
                grants
                    .iter()
                    .map(|it| {
                        let state = if it.revoked_at.is_some() { "revoked" } else { "live" };
                        format!("{}  {}  {}  {state}", it.domain, it.client_id, it.scopes)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        AdminCommand::Legacy(LegacyCommand::Usage) => {
            let usage = tessera_domain::legacy::usage(&ctx).await?;
            let value = json!(usage);
            let date =
                |at: Option<i64>| at.map(tessera_domain::legacy::rfc3339).unwrap_or_default();
            print(json_mode, &value, || {
                usage
                    .iter()
                    .map(|it| {
                        format!(
                            "{}  {}  {} accounts  {} grants  {} requests (30 days)  warn {}  refuse {}",
                            it.protocol,
                            it.name,
                            it.accounts,
                            it.grants,
                            it.requests,
                            date(it.dates.warn_from),
                            date(it.dates.refuse_from)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        AdminCommand::Legacy(LegacyCommand::Deprecate {
            protocol,
            client,
            warn_from,
            refuse_from,
        }) => {
            use tessera_domain::legacy::{self, Dates, parse_date};
            let protocol = tessera_domain::credentials::Protocol::parse(protocol)
                .filter(|it| legacy::PROTOCOLS.contains(it))
                .ok_or_else(|| {
                    anyhow::anyhow!("--protocol: one of authsub, clientlogin, oauth1, openid2")
                })?;
            let date = |flag: &str, text: &Option<String>| -> anyhow::Result<Option<i64>> {
                text.as_deref()
                    .map(|text| {
                        parse_date(text).ok_or_else(|| {
                            anyhow::anyhow!(
                                "{flag}: {text:?} is not unix seconds or an RFC 3339 date"
                            )
                        })
                    })
                    .transpose()
            };
            let dates = Dates {
                warn_from: date("--warn-from", warn_from)?,
                refuse_from: date("--refuse-from", refuse_from)?,
            };
            let Some(client) = client else {
                let configured = ctx.policy.deprecation.of(protocol);
                let value = json!({ "protocol": protocol.as_str(), "dates": configured });
                print(json_mode, &value, || {
                    format!(
                        "{}: {:?} (set in [legacy] of the configuration)",
                        protocol.as_str(),
                        configured
                    )
                });
                return Ok(ExitCode::SUCCESS);
            };
            legacy::set_deprecation(&ctx, protocol, client, dates, &actor).await?;
            let applied = legacy::dates(&ctx, protocol, Some(client)).await?;
            let value =
                json!({ "protocol": protocol.as_str(), "client": client, "dates": applied });
            print(json_mode, &value, || format!("{} {client}: {:?}", protocol.as_str(), applied));
        }
        AdminCommand::Service(ServiceCommand::Web {
            name,
            prefixes,
            logout_url,
            backchannel_logout_url,
        }) => {
            let web = tessera_domain::services::ServiceWeb {
                prefixes: prefixes.clone(),
                logout_url: logout_url.clone(),
                backchannel_logout_url: backchannel_logout_url.clone(),
            };
            let service = tessera_domain::services::set_web(&ctx, name, web, &actor).await?;
            print(json_mode, &service_json(&service), || {
                format!(
                    "service {} signs in on the web under [{}]",
                    service.name, service.web_prefixes
                )
            });
        }
        AdminCommand::Service(ServiceCommand::List) => {
            let services = tessera_domain::services::list(&ctx).await?;
            let value = json!(services.iter().map(service_json).collect::<Vec<_>>());
            print(json_mode, &value, || {
                services
                    .iter()
                    .map(|it| {
                        format!(
                            "{}  {}  {}  [{}]",
                            it.name, it.display_name, it.scopes, it.protocols
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        AdminCommand::Keys(KeysCommand::List) => {
            tessera_domain::keys::ensure(&ctx).await?;
            let keys = tessera_domain::keys::list(&ctx).await?;
            let value = json!(keys
                .iter()
                .map(|it| json!({ "kid": it.kid, "alg": it.alg, "state": it.state.as_str(), "created_at": it.created_at, "activated_at": it.activated_at, "retired_at": it.retired_at }))
                .collect::<Vec<_>>());
            print(json_mode, &value, || {
                keys.iter()
                    .map(|it| format!("{}  {}  {}", it.kid, it.alg, it.state.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        AdminCommand::Keys(KeysCommand::Rotate) => {
            tessera_domain::keys::rotate(&ctx, &actor).await?;
            let keys = tessera_domain::keys::list(&ctx).await?;
            let active = keys
                .iter()
                .find(|it| it.state == tessera_store::KeyState::Active)
                .map(|it| it.kid.clone())
                .unwrap_or_default();
            print(json_mode, &json!({ "active": active }), || {
                format!("rotated; active key is {active}")
            });
        }
        AdminCommand::Device(DeviceCommand::RotateKey) => {
            tessera_domain::device::rotate_key(&ctx, &actor).await?;
            print(json_mode, &json!({ "rotated": true }), || {
                "rotated the device login key".to_owned()
            });
        }
        AdminCommand::Audit { account, since, limit } => {
            let account_id = match account {
                Some(email) => Some(
                    tessera_domain::accounts::find_by_email(&ctx, email)
                        .await
                        .map_err(|_| format_err!("no account {email}"))?
                        .id,
                ),
                None => None,
            };
            let since = since.as_deref().map(|it| parse_since(ctx.now(), it)).transpose()?;
            let events =
                tessera_domain::audit::list(&ctx, account_id.as_deref(), since, *limit).await?;
            let value = json!(events
                .iter()
                .map(|it| json!({ "at": it.at, "event": it.event, "account_id": it.account_id, "actor": it.actor, "ip": it.ip, "detail": serde_json::from_str::<Value>(&it.detail).unwrap_or(Value::Null) }))
                .collect::<Vec<_>>());
            print(json_mode, &value, || {
                events
                    .iter()
                    .map(|it| {
                        format!(
                            "{}  {}  {}  {}  {}",
                            it.at,
                            it.event,
                            it.account_id.as_deref().unwrap_or("-"),
                            it.actor,
                            it.detail
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        AdminCommand::Dev(DevCommand::Seed {
            sessions,
            credentials,
            out,
            oauth1_rsa_cert,
            push_devices,
            second_account,
        }) => {
            let cert = match oauth1_rsa_cert {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|err| format_err!("reading {}: {err}", path.display()))?,
                ),
                None => None,
            };
            let value = match second_account {
                true => super::admin_seed::seed_second(&ctx, *sessions).await?,
                false => {
                    let (sessions, credentials) = (*sessions, *credentials);
                    let cert = cert.as_deref();
                    super::admin_seed::seed(&ctx, sessions, credentials, cert, *push_devices)
                        .await?
                }
            };
            match out {
                Some(path) => std::fs::write(path, serde_json::to_vec_pretty(&value)?)?,
                None => println!("{}", serde_json::to_string_pretty(&value)?),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn find(ctx: &Ctx, email: &str) -> anyhow::Result<AccountRecord> {
    tessera_domain::accounts::find_by_email(ctx, email)
        .await
        .map_err(|_| format_err!("no account {email}"))
}

async fn account(ctx: &Ctx, json_mode: bool, command: &AccountCommand) -> anyhow::Result<()> {
    let actor = Actor::Cli;
    match command {
        AccountCommand::Add { email, name, domain, password_stdin, admin } => {
            let password = match password_stdin {
                true => Some(super::read_password_stdin()?),
                false => None,
            };
            let new = NewAccount {
                email: email.clone(),
                name: name.clone(),
                domain: domain.clone(),
                password,
                is_admin: *admin,
                state: AccountState::Active,
            };
            let account = tessera_domain::accounts::create(ctx, new, &actor, "").await?;
            print(json_mode, &account_json(&account), || {
                format!("added {} ({})", account.email, account.id)
            });
        }
        AccountCommand::List { offset, limit } => {
            let accounts = tessera_domain::accounts::list(ctx, *offset, *limit).await?;
            let value = json!(accounts.iter().map(account_json).collect::<Vec<_>>());
            print(json_mode, &value, || {
                accounts
                    .iter()
                    .map(|it| {
                        format!(
                            "{}  {}  {}{}",
                            it.id,
                            it.email,
                            it.state.as_str(),
                            if it.is_admin { "  admin" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        AccountCommand::Show { email } => {
            let account = find(ctx, email).await?;
            let value = account_json(&account);
            print(json_mode, &value, || serde_json::to_string_pretty(&value).unwrap_or_default());
        }
        AccountCommand::Disable { email }
        | AccountCommand::Enable { email }
        | AccountCommand::Delete { email } => {
            let account = find(ctx, email).await?;
            let state = match command {
                AccountCommand::Disable { .. } => AccountState::Disabled,
                AccountCommand::Delete { .. } => AccountState::Deleted,
                _ => AccountState::Active,
            };
            tessera_domain::accounts::set_state(ctx, &account, state, &actor, "").await?;
            print(json_mode, &json!({ "email": account.email, "state": state.as_str() }), || {
                format!("{} is now {}", account.email, state.as_str())
            });
        }
        AccountCommand::SetState { email, state } => {
            let state =
                AccountState::parse(state).ok_or_else(|| format_err!("unknown state {state:?}"))?;
            let account = find(ctx, email).await?;
            tessera_domain::accounts::set_state(ctx, &account, state, &actor, "").await?;
            print(json_mode, &json!({ "email": account.email, "state": state.as_str() }), || {
                format!("{} is now {}", account.email, state.as_str())
            });
        }
        AccountCommand::SetPassword { email, password_stdin } => {
            if !password_stdin {
                return Err(format_err!(
                    "pass --password-stdin and write the password to standard input"
                ));
            }
            let account = find(ctx, email).await?;
            let password = super::read_password_stdin()?;
            tessera_domain::accounts::set_password(
                ctx, &account, password, None, false, &actor, "",
            )
            .await?;
            print(json_mode, &json!({ "email": account.email, "password_changed": true }), || {
                format!("password of {} changed", account.email)
            });
        }
    }
    Ok(())
}

fn client_json(client: &tessera_domain::oauth2::clients::Client) -> Value {
    json!({
        "client_id": client.record.client_id,
        "project_id": client.record.project_id,
        "kind": client.record.kind,
        "name": client.record.name,
        "confidential": client.record.secret_digest.is_some(),
        "redirect_uris": client.settings.redirect_uris,
        "android_package": client.settings.android_package,
        "android_cert_sha1": client.settings.android_cert_sha1,
        "allow_implicit": client.settings.allow_implicit,
        "jwt_access_tokens": client.settings.jwt_access_tokens,
        "key_ids": client.settings.keys.iter().map(|it| it.kid.clone()).collect::<Vec<_>>(),
        "created_at": client.record.created_at,
    })
}

async fn client(ctx: &Ctx, json_mode: bool, command: &ClientCommand) -> anyhow::Result<()> {
    use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};
    let actor = Actor::Cli;
    match command {
        ClientCommand::Add {
            project,
            kind,
            name,
            redirect_uris,
            android_package,
            android_cert_sha1,
            allow_implicit,
            jwt_access_tokens,
        } => {
            let project = tessera_domain::projects::find_by_name(ctx, project)
                .await
                .map_err(|_| format_err!("no project named {project}"))?;
            let kind =
                ClientKind::parse(kind).ok_or_else(|| format_err!("unknown client kind {kind}"))?;
            let new = NewClient {
                kind,
                name: name.clone(),
                redirect_uris: redirect_uris.clone(),
                android_package: android_package.clone(),
                android_cert_sha1: android_cert_sha1.clone(),
                allow_implicit: *allow_implicit,
                jwt_access_tokens: *jwt_access_tokens,
            };
            let created = clients::create(ctx, &project, new, &actor).await?;
            let mut value = client_json(&created.client);
            if let Some(secret) = &created.secret {
                value["client_secret"] = json!(secret);
            }
            print(json_mode, &value, || match &created.secret {
                Some(secret) => format!(
                    "client_id: {}\nclient_secret: {secret}\n(the secret is shown only now)",
                    created.client.record.client_id
                ),
                None => format!("client_id: {}", created.client.record.client_id),
            });
        }
        ClientCommand::List { project } => {
            let project = tessera_domain::projects::find_by_name(ctx, project)
                .await
                .map_err(|_| format_err!("no project named {project}"))?;
            let list = clients::list(ctx, &project.id).await?;
            let value = json!(list.iter().map(client_json).collect::<Vec<_>>());
            print(json_mode, &value, || {
                list.iter()
                    .map(|it| {
                        format!("{}  {}  {}", it.record.client_id, it.record.kind, it.record.name)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ClientCommand::Show { client_id } => {
            let found = clients::load(ctx, client_id)
                .await?
                .ok_or_else(|| format_err!("no client {client_id}"))?;
            let value = client_json(&found);
            print(json_mode, &value, || serde_json::to_string_pretty(&value).unwrap_or_default());
        }
        ClientCommand::Delete { client_id } => {
            clients::delete(ctx, client_id, &actor).await?;
            print(json_mode, &json!({ "client_id": client_id, "deleted": true }), || {
                format!("deleted client {client_id}")
            });
        }
        ClientCommand::AddKey { client_id } => {
            let (kid, pem) = clients::add_key(ctx, client_id, &actor).await?;
            print(
                json_mode,
                &json!({ "client_id": client_id, "private_key_id": kid, "private_key": pem }),
                || format!("private_key_id: {kid}\n{pem}(the private key is shown only now)"),
            );
        }
        ClientCommand::UploadKey { client_id, public_key } => {
            let pem = std::fs::read_to_string(public_key)
                .map_err(|err| format_err!("reading {}: {err}", public_key.display()))?;
            let kid = clients::upload_key(ctx, client_id, &pem, &actor).await?;
            print(json_mode, &json!({ "client_id": client_id, "kid": kid }), || {
                format!("registered key {kid}")
            });
        }
        ClientCommand::RemoveKey { client_id, kid } => {
            clients::remove_key(ctx, client_id, kid, &actor).await?;
            print(json_mode, &json!({ "client_id": client_id, "removed": kid }), || {
                format!("removed key {kid}")
            });
        }
        ClientCommand::RotateSecret { client_id } => {
            let secret = clients::rotate_secret(ctx, client_id, &actor).await?;
            print(json_mode, &json!({ "client_id": client_id, "client_secret": secret }), || {
                format!("client_secret: {secret}\n(the secret is shown only now)")
            });
        }
    }
    Ok(())
}

fn domain_grant_json(grant: &tessera_domain::oauth1::DomainGrant) -> serde_json::Value {
    json!({
        "domain": grant.domain,
        "consumer": grant.client_id,
        "scopes": grant.scopes.split(' ').filter(|it| !it.is_empty()).collect::<Vec<_>>(),
        "granted_by": grant.granted_by,
        "created_at": grant.created_at,
        "revoked_at": grant.revoked_at,
    })
}
