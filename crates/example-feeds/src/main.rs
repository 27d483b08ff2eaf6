//! `tessera-example-feeds --accounts URL --service NAME --listen ADDR --public URL
//! [--proxy-app CLIENT_ID]`: the example feeds service (`tessera_example_feeds`) on one address,
//! with the single-page reader at `/reader` when a front-end app is named.

use tessera_example_feeds::{FeedsConfig, router};

fn args() -> Result<(FeedsConfig, String), String> {
    let mut config = FeedsConfig {
        accounts: "http://127.0.0.1:8080".to_owned(),
        service: "feeds-a".to_owned(),
        public: String::new(),
        cookie_name: None,
        api_scope: None,
        proxy_app: None,
    };
    let mut listen = "127.0.0.2:8081".to_owned();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--accounts" => config.accounts = value,
            "--service" => config.service = value,
            "--listen" => listen = value,
            "--public" => config.public = value,
            "--proxy-app" => config.proxy_app = Some(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if config.public.is_empty() {
        config.public = format!("http://{listen}");
    }
    Ok((config, listen))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let (config, listen) = args()?;
    let app = router(&config)?;
    let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| e.to_string())?;
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}
