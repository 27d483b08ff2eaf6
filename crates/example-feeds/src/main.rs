//! `tessera-example-feeds --accounts URL --service NAME --listen ADDR --public URL`: a small
//! "feeds" web app behind `tessera_client::sso::SsoLayer`. Anonymous visitors are sent to tessera's
//! `ServiceLogin`; signed-in ones see their feed page; tessera's sign-out reaches it through
//! `/sso/logout` (front channel) and `/sso/backchannel` (back channel). Register it first:
//! `tessera admin service web NAME --prefix PUBLIC/ --logout-url PUBLIC/sso/logout
//! --backchannel-logout-url PUBLIC/sso/backchannel` (`--demo` registers two).

use axum::Extension;
use axum::response::Html;
use axum::routing::{get, post};
use tessera_client::sso::{SsoConfig, SsoLayer, SsoUser};

struct Args {
    accounts: String,
    service: String,
    listen: String,
    public: String,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        accounts: "http://127.0.0.1:8080".to_owned(),
        service: "feeds-a".to_owned(),
        listen: "127.0.0.2:8081".to_owned(),
        public: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--accounts" => out.accounts = value,
            "--service" => out.service = value,
            "--listen" => out.listen = value,
            "--public" => out.public = value,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if out.public.is_empty() {
        out.public = format!("http://{}", out.listen);
    }
    Ok(out)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = args()?;
    let sso = SsoLayer::new(SsoConfig::new(&args.accounts, &args.service, &args.public));
    let logout = sso.logout_url();
    let service = args.service.clone();
    let app = axum::Router::new()
        .route(
            "/",
            get(move |Extension(user): Extension<SsoUser>| async move {
                Html(format!(
                    "<!doctype html><title>{service}</title><h1>Feeds at {service}</h1><p>Signed in as {}</p><p><a href=\"{}\">Sign out everywhere</a></p>",
                    escape(&user.email),
                    escape(&logout)
                ))
            }),
        )
        .route("/sso/logout", get(|| async { "" }))
        .route("/sso/backchannel", post(|| async { "" }))
        .layer(sso);
    let listener = tokio::net::TcpListener::bind(&args.listen).await.map_err(|e| e.to_string())?;
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}
