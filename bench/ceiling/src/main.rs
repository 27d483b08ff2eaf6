//! Ceilings for `cargo xtask bench`: what "HTTP + crypto only" reaches on this machine.
//!
//! ```text
//! tessera-bench-ceiling serve --listen 127.0.0.1:PORT   axum: GET /hello, POST /form, POST /token,
//!                                                       POST /argon2, GET /readyz
//! tessera-bench-ceiling crypto --millis N [--threads T] [--only OP,...]
//!                                                       raw aws-lc-rs sign/verify and Argon2id ops/s, JSON
//! tessera-bench-ceiling canary --millis N [--threads T] RSA-2048 signatures/s (the CPU canary), JSON
//! ```
//!
//! The token mint authenticates a client_credentials request and signs an ES256 JWT (the algorithm
//! of tessera's RFC 9068 access tokens), with no store: the part of tessera's token endpoint that
//! no amount of engineering removes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey,
};
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

/// The client the token mint accepts (the harness sends exactly these).
const CLIENT_ID: &str = "tessera-bench-client";
const CLIENT_SECRET: &str = "tessera-bench-secret-0123456789abcdef0123456789abcdef";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt =
        |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let threads = match opt("--threads") {
        Some(t) => t.parse().context("--threads")?,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let millis: u64 = opt("--millis").map_or(Ok(1000), |m| m.parse()).context("--millis")?;
    match args.first().map(String::as_str) {
        Some("serve") => {
            let listen: SocketAddr =
                opt("--listen").context("serve needs --listen ADDR")?.parse()?;
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()?
                .block_on(serve(listen, threads))
        }
        Some("crypto") => {
            let only: Option<Vec<String>> =
                opt("--only").map(|o| o.split(',').map(str::to_owned).collect());
            let report = crypto(threads, Duration::from_millis(millis), only.as_deref())?;
            println!("{report}");
            Ok(())
        }
        Some("canary") => {
            let key = RsaKeyPair::generate(KeySize::Rsa2048)?;
            let m =
                measure(threads, Duration::from_millis(millis), &|| rs256_sign(&key).map(drop))?;
            println!(
                "{}",
                json!({ "threads": threads, "millis": millis, "rsa2048_sign_per_sec": m.rate })
            );
            Ok(())
        }
        _ => bail!(
            "usage: tessera-bench-ceiling serve --listen ADDR | crypto --millis N | canary --millis N"
        ),
    }
}

struct Mint {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    issuer: String,
    /// One Argon2id hash per core at a time.
    hash_permits: tokio::sync::Semaphore,
    cores: usize,
}

async fn serve(listen: SocketAddr, cores: usize) -> anyhow::Result<()> {
    let mint = Arc::new(Mint {
        key: EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)?,
        rng: SystemRandom::new(),
        issuer: format!("http://{listen}"),
        hash_permits: tokio::sync::Semaphore::new(cores),
        cores,
    });
    let app = Router::new()
        .route("/readyz", get(|| async { "ok" }))
        .route("/hello", get(hello))
        .route("/form", post(form))
        .route("/token", post(token))
        .route("/argon2", post(argon2))
        .with_state(mint);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("ceiling listening on http://{listen}");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn hello() -> Json<serde_json::Value> {
    Json(json!({ "hello": "world", "service": "tessera-bench-ceiling" }))
}

/// The password-check limit over HTTP: one Argon2id hash (m=19456 KiB, t=2, p=1) per request, off
/// the async threads, one per core at a time.
async fn argon2(
    State(mint): State<Arc<Mint>>,
    Form(fields): Form<HashMap<String, String>>,
) -> Response {
    let password = fields.get("password").cloned().unwrap_or_default();
    let Ok(_permit) = mint.hash_permits.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let hashed = tokio::task::spawn_blocking(move || argon2_hash(password.as_bytes())).await;
    match hashed {
        Ok(Ok(())) => Json(json!({ "ok": true, "cores": mint.cores })).into_response(),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// One Argon2id hash in this thread's own memory, allocated once: the hash's pure compute, with
/// no allocation, zeroing or page faults per call (which also keeps the RSS at one block array
/// per thread instead of whatever the allocator keeps of freed 19 MiB arrays).
fn argon2_hash(password: &[u8]) -> anyhow::Result<()> {
    thread_local! {
        static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let argon = argon2id()?;
    let blocks = argon.params().block_count();
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() != blocks {
            *memory = vec![argon2::Block::new(); blocks];
        }
        let mut hash = [0u8; 32];
        argon
            .hash_password_into_with_memory(
                password,
                b"sixteen-byte-salt",
                &mut hash,
                &mut memory[..],
            )
            .map_err(|e| anyhow::format_err!("argon2: {e}"))
    })
}

fn argon2id() -> anyhow::Result<Argon2<'static>> {
    let params = Params::new(19_456, 2, 1, Some(32))
        .map_err(|e| anyhow::format_err!("argon2 params: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

async fn form(Form(fields): Form<HashMap<String, String>>) -> Json<serde_json::Value> {
    let bytes: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
    Json(json!({ "fields": fields.len(), "bytes": bytes }))
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: String,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    resource: Option<String>,
}

async fn token(State(mint): State<Arc<Mint>>, Form(req): Form<TokenRequest>) -> Response {
    if req.grant_type != "client_credentials" {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "unsupported_grant_type" })))
            .into_response();
    }
    let id_ok = req.client_id.as_bytes().ct_eq(CLIENT_ID.as_bytes());
    let secret_ok = req.client_secret.as_bytes().ct_eq(CLIENT_SECRET.as_bytes());
    if !bool::from(id_ok & secret_ok) {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "invalid_client" })))
            .into_response();
    }
    match mint_jwt(&mint, &req) {
        Ok(jwt) => Json(json!({ "access_token": jwt, "token_type": "Bearer", "expires_in": 3600 }))
            .into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the ceiling has no injected clock: it is the bare minimum"
)]
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn mint_jwt(mint: &Mint, req: &TokenRequest) -> anyhow::Result<String> {
    let mut jti = [0u8; 16];
    mint.rng.fill(&mut jti)?;
    let now = unix_now();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"at+jwt","kid":"ceiling"}"#);
    let claims = json!({
        "iss": mint.issuer,
        "sub": req.client_id,
        "client_id": req.client_id,
        "aud": req.resource.as_deref().unwrap_or("urn:tessera-bench:api"),
        "scope": req.scope.as_deref().unwrap_or("api:read"),
        "iat": now,
        "exp": now + 3600,
        "jti": URL_SAFE_NO_PAD.encode(jti),
    });
    let mut jwt = format!("{header}.{}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?));
    let sig = mint.key.sign(&mint.rng, jwt.as_bytes())?;
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
    Ok(jwt)
}

/// A JWT-sized message: what every sign/verify below works on.
/// The benchmark consumer's 1024-bit RSA public key (PKCS#1 `RSAPublicKey`, DER, base64): the
/// key of `crates/crypto/tests/fixtures/authsub-1024.key.pem`, which `cargo xtask bench` registers.
const RSA1024_PUBLIC_KEY: &str = "MIGJAoGBALaHOOD6aSnvXTC3iqi8Ulv2koKr6zbaqTXBBvwwiSQQYRqmzblLVAdq1OQB3dkpa3ki+Yg9/cWmcAQmz0N/0CyUJSmD3J1fWE0UML4tDPkGIDBhYJUJSPjiMMLe5AVpElezkWEPzdLgQmNP0yyK6wPbZbshELAajwbr5jjRdMwxAgMBAAE=";
/// That key's RSA-SHA1 (PKCS#1 v1.5) signature of [`MESSAGE`], base64.
const RSA1024_SHA1_SIGNATURE: &str = "M7j08wBJPi+QF68JYg5+knyC1X7ebgfxgwiBrY+t3CaYwa9LNqFopfcr8JsUF6u9Hg5f/iXP6RpXcs13H9512KE0N8FSHPm0N+a4jB6lUqGJViProrjwWrcaJa1QWIbRjWyztG55Yu4gcFUZecvDYFXLt3SLDNVb5JIA7nLFSGk=";

const MESSAGE: &[u8] = b"eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xIiwic3ViIjoiMTIzNDU2Nzg5MCIsImF1ZCI6InVybjp0ZXNzZXJhLWJlbmNoOmFwaSIsImV4cCI6MTcwMDAwMDAwMCwiaWF0IjoxNjk5OTk2NDAwfQ";

fn rs256_sign(key: &RsaKeyPair) -> anyhow::Result<Vec<u8>> {
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), MESSAGE, &mut sig)?;
    Ok(sig)
}

/// What [`measure`] found.
struct Measured {
    /// Operations per second, all threads together (each thread's count over its own elapsed
    /// time, summed).
    rate: f64,
    /// CPU time per operation (the threads' own, from /proc/thread-self/schedstat): unlike the
    /// rate, it hardly moves when other processes compete for the cores.
    cpu_us_per_op: Option<f64>,
}

/// This thread's time on a CPU so far, in nanoseconds.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs `op` on `threads` threads for about `dur`.
fn measure(
    threads: usize,
    dur: Duration,
    op: &(dyn Fn() -> anyhow::Result<()> + Sync),
) -> anyhow::Result<Measured> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(move || -> anyhow::Result<(f64, u64, Option<u64>)> {
                    let cpu_start = thread_cpu_ns();
                    let start = Instant::now();
                    let mut n = 0u64;
                    // At least two operations, so a slow one (Argon2id) still gives a rate.
                    while n < 2 || start.elapsed() < dur {
                        op()?;
                        n += 1;
                    }
                    let rate = n as f64 / start.elapsed().as_secs_f64();
                    let cpu = thread_cpu_ns()
                        .zip(cpu_start)
                        .map(|(end, begin)| end.saturating_sub(begin));
                    Ok((rate, n, cpu))
                })
            })
            .collect();
        let (mut rate, mut ops, mut cpu_ns) = (0.0, 0u64, Some(0u64));
        for h in handles {
            let (r, n, cpu) =
                h.join().map_err(|_| anyhow::format_err!("a measuring thread panicked"))??;
            rate += r;
            ops += n;
            cpu_ns = cpu_ns.zip(cpu).map(|(a, b)| a + b);
        }
        let cpu_us_per_op = cpu_ns.filter(|_| ops > 0).map(|ns| ns as f64 / 1e3 / ops as f64);
        Ok(Measured { rate, cpu_us_per_op })
    })
}

/// Every operation's rate, or only those named in `only`.
fn crypto(
    threads: usize,
    dur: Duration,
    only: Option<&[String]>,
) -> anyhow::Result<serde_json::Value> {
    let rng = SystemRandom::new();
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048)?;
    let rsa_sig = rs256_sign(&rsa)?;
    let rsa_pub = UnparsedPublicKey::new(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        rsa.public_key().as_ref().to_vec(),
    );
    let ec = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)?;
    let ec_sig = ec.sign(&rng, MESSAGE)?.as_ref().to_vec();
    let ec_pub = UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_FIXED,
        ec.public_key().as_ref().to_vec(),
    );
    let ed = Ed25519KeyPair::generate()?;
    let ed_sig = ed.sign(MESSAGE).as_ref().to_vec();
    let ed_pub = UnparsedPublicKey::new(&signature::ED25519, ed.public_key().as_ref().to_vec());

    let mut out = serde_json::Map::new();
    let mut cpu = serde_json::Map::new();
    let mut run =
        |name: &str, op: &(dyn Fn() -> anyhow::Result<()> + Sync)| -> anyhow::Result<()> {
            if only.is_none_or(|o| o.iter().any(|n| n == name)) {
                let m = measure(threads, dur, op)?;
                out.insert(name.to_owned(), json!((m.rate * 10.0).round() / 10.0));
                if let Some(us) = m.cpu_us_per_op {
                    cpu.insert(name.to_owned(), json!((us * 100.0).round() / 100.0));
                }
            }
            Ok(())
        };
    run("rs256_sign", &|| rs256_sign(&rsa).map(drop))?;
    run("rs256_verify", &|| Ok(rsa_pub.verify(MESSAGE, &rsa_sig)?))?;
    run("es256_sign", &|| ec.sign(&rng, MESSAGE).map(drop).map_err(Into::into))?;
    run("es256_verify", &|| Ok(ec_pub.verify(MESSAGE, &ec_sig)?))?;
    run("eddsa_sign", &|| {
        std::hint::black_box(ed.sign(MESSAGE));
        Ok(())
    })?;
    run("eddsa_verify", &|| Ok(ed_pub.verify(MESSAGE, &ed_sig)?))?;
    // OAuth 1.0's RSA-SHA1 (PKCS#1 v1.5) with the 1024-bit key of the benchmark's consumer:
    // the raw limit of the server's `oauth1_rsa_caller` scenario.
    let sha1_pub = UnparsedPublicKey::new(
        &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
        BASE64.decode(RSA1024_PUBLIC_KEY)?,
    );
    let sha1_sig = BASE64.decode(RSA1024_SHA1_SIGNATURE)?;
    run("rsa1024_sha1_verify", &|| Ok(sha1_pub.verify(MESSAGE, &sha1_sig)?))?;
    run("argon2id_m19456_t2_p1", &|| argon2_hash(b"correct horse battery staple"))?;
    Ok(
        json!({ "threads": threads, "millis": dur.as_millis() as u64, "ops_per_sec": out, "cpu_us_per_op": cpu }),
    )
}
