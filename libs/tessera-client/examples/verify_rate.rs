//! How many ID tokens per second `IdTokenVerifier` verifies in process, for `cargo xtask bench`.
//!
//! ```text
//! verify_rate --issuer URL --audience CLIENT_ID --token JWT [--millis N] [--threads T]
//! ```
//!
//! The first verification fetches the issuer's keys (discovery, then the JWKS); the timed ones run
//! on `threads` tasks of a runtime with as many workers, each verifying the same token again and
//! again until `millis` have passed. Prints `{"ops_per_sec": …, "cpu_us_per_op": …}`, the CPU time
//! being the whole process's (user + system) over the timed part.

// A benchmark binary: its answer is what it prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use tessera_client::id_token::IdTokenVerifier;

struct Args {
    issuer: String,
    audience: String,
    token: String,
    millis: u64,
    threads: usize,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut issuer, mut audience, mut token) = (None, None, None);
    let (mut millis, mut threads) = (1000, 1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--issuer" => issuer = Some(value),
            "--audience" => audience = Some(value),
            "--token" => token = Some(value),
            "--millis" => millis = value.parse().map_err(|_| "--millis takes a number")?,
            "--threads" => threads = value.parse().map_err(|_| "--threads takes a number")?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Args {
        issuer: issuer.ok_or("--issuer is required")?,
        audience: audience.ok_or("--audience is required")?,
        token: token.ok_or("--token is required")?,
        millis,
        threads: threads.max(1),
    })
}

/// User + system CPU time of this process, from `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn main() {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(why) => {
            eprintln!("verify_rate: {why}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("verify_rate: {e}");
            std::process::exit(1);
        });
    if let Err(why) = runtime.block_on(run(&args)) {
        eprintln!("verify_rate: {why}");
        std::process::exit(1);
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let verifier = IdTokenVerifier::for_issuer(&args.issuer, &args.audience).build();
    verifier.verify(&args.token).await.map_err(|e| format!("the first verification: {e}"))?;
    let cpu_before = cpu_time();
    let started = Instant::now();
    let deadline = started + Duration::from_millis(args.millis);
    let mut tasks = Vec::new();
    for _ in 0..args.threads {
        let verifier = verifier.clone();
        let token = args.token.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                verifier.verify(&token).await.map_err(|e| e.to_string())?;
                done += 1;
            }
            Ok::<u64, String>(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.map_err(|e| e.to_string())??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, cpu_time()) {
        (Some(before), Some(after)) if total > 0 => {
            serde_json::json!((after.saturating_sub(before)).as_secs_f64() * 1e6 / total as f64)
        }
        _ => serde_json::Value::Null,
    };
    let ops = total as f64 / elapsed;
    println!("{}", serde_json::json!({ "ops_per_sec": ops, "cpu_us_per_op": cpu }));
    Ok(())
}
