//! `tessera token verify`: checks an ID token the way a back-end should (signature against the
//! issuer's published keys, issuer, lifetime, audience, optionally the authorized party), using the
//! `tessera-client` verifier.

use std::process::ExitCode;

use anyhow::format_err;
use clap::{Args, Subcommand};
use serde_json::json;
use tessera_client::id_token::IdTokenVerifier;

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Verify an ID token (JWT) and print its claims as JSON.
    Verify {
        /// The token; `-` reads it from standard input.
        token: String,
        /// An acceptable `aud` (repeat for several).
        #[arg(long = "audience", required = true)]
        audiences: Vec<String>,
        /// An acceptable `azp`, e.g. an Android client id (repeat for several).
        #[arg(long = "authorized-party")]
        authorized_parties: Vec<String>,
        /// The issuer; defaults to the configured public URL.
        #[arg(long)]
        issuer: Option<String>,
    },
}

pub(crate) async fn run(public_url: &str, args: &TokenArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        TokenCommand::Verify { token, audiences, authorized_parties, issuer } => {
            let token = match token.as_str() {
                "-" => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim().to_owned()
                }
                other => other.to_owned(),
            };
            let issuer = issuer.clone().unwrap_or_else(|| public_url.to_owned());
            let first = audiences.first().ok_or_else(|| format_err!("--audience is required"))?;
            let mut builder = IdTokenVerifier::for_issuer(issuer, first.clone());
            for audience in &audiences[1..] {
                builder = builder.audience(audience.clone());
            }
            for party in authorized_parties {
                builder = builder.authorized_party(party.clone());
            }
            let verifier = builder.build();
            match verifier.verify(&token).await {
                Ok(claims) => {
                    let value = json!({
                        "valid": true,
                        "iss": claims.iss,
                        "sub": claims.sub,
                        "aud": claims.aud,
                        "azp": claims.azp,
                        "email": claims.email,
                        "email_verified": claims.email_verified,
                        "hd": claims.hd,
                        "iat": claims.iat,
                        "exp": claims.exp,
                        "nonce": claims.nonce,
                    });
                    println!("{}", serde_json::to_string_pretty(&value)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(err) => {
                    println!("{}", json!({ "valid": false, "error": err.to_string() }));
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}
