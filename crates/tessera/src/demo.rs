//! `--demo`: an account, a hosted domain, a project with OAuth clients, a service for AuthSub
//! and ClientLogin, and push messaging (the `ac2dm` service, a project API key and a demo
//! device), to try every flow at once. Running it again finds what it made before and
//! changes nothing.

use serde::Serialize;
use tessera_domain::Ctx;
use tessera_domain::accounts::NewAccount;
use tessera_domain::audit::Actor;
use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};
use tessera_domain::services::NewService;
use tessera_store::AccountState;

pub const DEMO_EMAIL: &str = "demo@example.test";
pub const DEMO_PASSWORD: &str = "tessera-demo";
pub const DEMO_DOMAIN: &str = "example.test";
pub const DEMO_PROJECT: &str = "Demo project";

pub const DEMO_WEB_CLIENT: &str = "Demo web app";
pub const DEMO_DEVICE_CLIENT: &str = "Demo TV app";
/// The demo Android app: its client name, package and signing-certificate SHA-1 (made up).
pub const DEMO_ANDROID_CLIENT: &str = "Demo Android app";
pub const DEMO_ANDROID_PACKAGE: &str = "com.example.tessera.demo";
pub const DEMO_ANDROID_CERT_SHA1: &str =
    "DE:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22";

/// The service ClientLogin names (`service=cl`, Google's calendar service name) and the scope
/// prefix AuthSub asks for.
pub const DEMO_SERVICE: &str = "cl";
pub const DEMO_SERVICE_SCOPE: &str = "https://calendar.example.test/feeds/";
/// The demo OAuth 1.0 consumer: a registered domain with an HMAC secret.
pub const DEMO_OAUTH1_CONSUMER: &str = "oauth1-demo.example";
/// The legacy protocols the demo service accepts: every one tessera serves.
pub const DEMO_SERVICE_PROTOCOLS: [&str; 2] = ["authsub", "clientlogin"];
/// The two example web services (`tessera-example-feeds`) registered for web sign-on, each on a
/// loopback address of its own, so that signing in at one and opening the other crosses hosts.
pub const DEMO_WEB_SERVICES: [(&str, &str); 2] =
    [("feeds-a", "http://127.0.0.2:8081"), ("feeds-b", "http://127.0.0.3:8082")];

/// The demo project's push API key's name, and the demo device's install id.
pub const DEMO_PUSH_KEY: &str = "Demo push key";
pub const DEMO_PUSH_DEVICE: &str = "demo-device";

/// Push messaging in the demo: the sender id (the demo project's id), and, on the run that made
/// them, the API key and the demo device (install id, install credential, registration id of the
/// demo Android app), each shown once.
#[derive(Debug, Clone, Serialize)]
pub struct DemoPush {
    pub sender_id: String,
    pub api_key: Option<String>,
    pub device: Option<DemoDevice>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoDevice {
    pub id: String,
    pub credential: String,
    pub registration_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoInfo {
    pub email: String,
    pub password: String,
    pub project: String,
    /// The web client's id, its redirect URI, and its secret (known only on the run that made it).
    pub web_client_id: String,
    pub web_redirect_uri: String,
    pub web_client_secret: Option<String>,
    pub device_client_id: String,
    /// The Android client, for device login's per-service tokens.
    pub android_client_id: String,
    pub android_package: String,
    pub android_cert_sha1: String,
    /// The service ClientLogin and AuthSub use, the scope AuthSub asks for, and the page AuthSub
    /// returns to (where the token can be read off the address bar).
    pub service: String,
    pub service_scope: String,
    pub authsub_next: String,
    /// The OAuth 1.0 consumer key (a registered domain) and its HMAC secret (known only on the run
    /// that made it).
    pub oauth1_consumer: String,
    pub oauth1_secret: Option<String>,
    /// The example web services: name and public URL.
    pub web_services: Vec<(String, String)>,
    pub push: DemoPush,
}

pub async fn seed(ctx: &Ctx) -> anyhow::Result<DemoInfo> {
    if ctx.store.domains().get(DEMO_DOMAIN).await.map_err(tessera_domain::Error::from)?.is_none() {
        tessera_domain::accounts::add_domain(ctx, DEMO_DOMAIN, &Actor::System).await?;
    }
    if tessera_domain::accounts::find_by_email(ctx, DEMO_EMAIL).await.is_err() {
        let new = NewAccount {
            email: DEMO_EMAIL.to_owned(),
            name: "Demo User".to_owned(),
            domain: Some(DEMO_DOMAIN.to_owned()),
            password: Some(DEMO_PASSWORD.to_owned()),
            is_admin: false,
            state: AccountState::Active,
        };
        tessera_domain::accounts::create(ctx, new, &Actor::System, "").await?;
    }
    let existing = ctx
        .store
        .projects()
        .find_by_name(DEMO_PROJECT)
        .await
        .map_err(tessera_domain::Error::from)?;
    let project = match existing {
        Some(project) => project,
        None => {
            tessera_domain::projects::create(ctx, DEMO_PROJECT, DEMO_EMAIL, &Actor::System).await?
        }
    };
    // The web client returns to the account page, where the code can be read off the address bar.
    let web_redirect_uri = format!("{}/account", ctx.public_url);
    let existing = clients::list(ctx, &project.id).await?;
    let web = existing.iter().find(|it| it.record.name == DEMO_WEB_CLIENT);
    let (web_client_id, web_client_secret) = match web {
        Some(client) => (client.record.client_id.clone(), None),
        None => {
            let new = new_client(ClientKind::Web, DEMO_WEB_CLIENT, vec![web_redirect_uri.clone()]);
            let created = clients::create(ctx, &project, new, &Actor::System).await?;
            (created.client.record.client_id, created.secret)
        }
    };
    let device = existing.iter().find(|it| it.record.name == DEMO_DEVICE_CLIENT);
    let device_client_id = match device {
        Some(client) => client.record.client_id.clone(),
        None => {
            let new = new_client(ClientKind::Device, DEMO_DEVICE_CLIENT, Vec::new());
            clients::create(ctx, &project, new, &Actor::System).await?.client.record.client_id
        }
    };
    let android = existing.iter().find(|it| it.record.name == DEMO_ANDROID_CLIENT);
    let android_client_id = match android {
        Some(client) => client.record.client_id.clone(),
        None => {
            let new = NewClient {
                android_package: Some(DEMO_ANDROID_PACKAGE.to_owned()),
                android_cert_sha1: Some(DEMO_ANDROID_CERT_SHA1.to_owned()),
                ..new_client(ClientKind::Android, DEMO_ANDROID_CLIENT, Vec::new())
            };
            clients::create(ctx, &project, new, &Actor::System).await?.client.record.client_id
        }
    };
    if ctx.store.services().get(DEMO_SERVICE).await.map_err(tessera_domain::Error::from)?.is_none()
    {
        let new = NewService {
            name: DEMO_SERVICE.to_owned(),
            display_name: "Calendar (demo)".to_owned(),
            scopes: vec![DEMO_SERVICE_SCOPE.to_owned()],
            clientlogin_ttl_secs: None,
            protocols: Some(DEMO_SERVICE_PROTOCOLS.map(str::to_owned).to_vec()),
        };
        tessera_domain::services::add(ctx, new, &Actor::System).await?;
    }
    let oauth1_secret = if tessera_domain::authsub::registration(ctx, DEMO_OAUTH1_CONSUMER)
        .await?
        .is_none()
    {
        tessera_domain::authsub::register(
            ctx,
            DEMO_OAUTH1_CONSUMER,
            &format!("https://{DEMO_OAUTH1_CONSUMER}/"),
            None,
            Some(DEMO_EMAIL),
            &Actor::System,
        )
        .await?;
        Some(
            tessera_domain::oauth1::mint_consumer_secret(ctx, DEMO_OAUTH1_CONSUMER, &Actor::System)
                .await?,
        )
    } else {
        None
    };
    for (name, public) in DEMO_WEB_SERVICES {
        if ctx.store.services().get(name).await.map_err(tessera_domain::Error::from)?.is_none() {
            let new = NewService {
                name: name.to_owned(),
                display_name: format!("Feeds ({name})"),
                scopes: vec![format!("{public}/api/")],
                clientlogin_ttl_secs: None,
                protocols: Some(Vec::new()),
            };
            tessera_domain::services::add(ctx, new, &Actor::System).await?;
            let web = tessera_domain::services::ServiceWeb {
                prefixes: vec![format!("{public}/")],
                logout_url: Some(format!("{public}/sso/logout")),
                backchannel_logout_url: Some(format!("{public}/sso/backchannel")),
            };
            tessera_domain::services::set_web(ctx, name, web, &Actor::System).await?;
        }
    }
    let push = seed_push(ctx, &project.id).await?;
    Ok(DemoInfo {
        push,
        oauth1_consumer: DEMO_OAUTH1_CONSUMER.to_owned(),
        oauth1_secret,
        email: DEMO_EMAIL.to_owned(),
        password: DEMO_PASSWORD.to_owned(),
        project: DEMO_PROJECT.to_owned(),
        web_client_id,
        web_redirect_uri,
        web_client_secret,
        device_client_id,
        android_client_id,
        android_package: DEMO_ANDROID_PACKAGE.to_owned(),
        android_cert_sha1: DEMO_ANDROID_CERT_SHA1.replace(':', "").to_ascii_lowercase(),
        service: DEMO_SERVICE.to_owned(),
        service_scope: DEMO_SERVICE_SCOPE.to_owned(),
        authsub_next: format!("{}/account", ctx.public_url),
        web_services: DEMO_WEB_SERVICES
            .iter()
            .map(|(name, public)| ((*name).to_owned(), (*public).to_owned()))
            .collect(),
    })
}

/// The `ac2dm` service (C2DM senders' ClientLogin tokens), and on the first run the project's
/// push API key and a demo device registered for the demo Android app.
async fn seed_push(ctx: &Ctx, project_id: &str) -> anyhow::Result<DemoPush> {
    use tessera_domain::push;
    let service = push::C2DM_SERVICE;
    if ctx.store.services().get(service).await.map_err(tessera_domain::Error::from)?.is_none() {
        let new = NewService {
            name: service.to_owned(),
            display_name: "Push messaging (C2DM)".to_owned(),
            scopes: vec![push::PUSH_SCOPE.to_owned()],
            clientlogin_ttl_secs: None,
            protocols: Some(vec!["clientlogin".to_owned()]),
        };
        tessera_domain::services::add(ctx, new, &Actor::System).await?;
    }
    let keys = push::list_api_keys(ctx, project_id).await?;
    if keys.iter().any(|it| it.name == DEMO_PUSH_KEY) {
        return Ok(DemoPush { sender_id: project_id.to_owned(), api_key: None, device: None });
    }
    let (_, api_key) =
        push::create_api_key_by(ctx, project_id, DEMO_PUSH_KEY, &Actor::System).await?;
    let request = tessera_proto_push::Register {
        app: DEMO_ANDROID_PACKAGE.to_owned(),
        device: DEMO_PUSH_DEVICE.to_owned(),
        senders: vec![project_id.to_owned()],
        cert: String::new(),
        delete: false,
    };
    let (registration_id, credential) = push::register_new_install(ctx, &request)
        .await?
        .map_err(|code| anyhow::format_err!("registering the demo device: {code:?}"))?;
    Ok(DemoPush {
        sender_id: project_id.to_owned(),
        api_key: Some(api_key),
        device: Some(DemoDevice { id: DEMO_PUSH_DEVICE.to_owned(), credential, registration_id }),
    })
}

fn new_client(kind: ClientKind, name: &str, redirect_uris: Vec<String>) -> NewClient {
    NewClient {
        kind,
        name: name.to_owned(),
        redirect_uris,
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: false,
    }
}
