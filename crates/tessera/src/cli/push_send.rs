//! `tessera push send`: sends a GCM message to a registration id or a topic with the
//! `tessera-client` sender (JSON, retrying a 5xx as `Retry-After` says), and prints the outcome
//! as JSON. Exits non-zero when nothing was accepted.

use std::process::ExitCode;

use anyhow::format_err;
use clap::Args;
use serde_json::json;
use tessera_client::push_sender::{Answer, Credential, Message, Outcome, Sender, Target};

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The server's root URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    server: String,
    /// The project's API key (or the environment variable TESSERA_PUSH_KEY).
    #[arg(long, env = "TESSERA_PUSH_KEY", hide_env_values = true)]
    key: String,
    /// A registration id (repeat for several).
    #[arg(long = "to", required_unless_present = "topic", conflicts_with = "topic")]
    to: Vec<String>,
    /// A topic name (without `/topics/`).
    #[arg(long)]
    topic: Option<String>,
    /// A data entry `key=value` (repeat for several).
    #[arg(long = "data", value_parser = parse_pair)]
    data: Vec<(String, String)>,
    #[arg(long)]
    collapse_key: Option<String>,
    /// Time to live in seconds (0..2419200).
    #[arg(long)]
    ttl: Option<u32>,
    /// Validate only; nothing is stored.
    #[arg(long)]
    dry_run: bool,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not key=value")),
    }
}

fn outcome_json(outcome: &Outcome) -> serde_json::Value {
    match outcome {
        Outcome::Sent { message_id, canonical } => {
            json!({ "message_id": message_id, "registration_id": canonical })
        }
        Outcome::Failed(code) => json!({ "error": code }),
    }
}

pub(crate) async fn run(args: &SendArgs) -> anyhow::Result<ExitCode> {
    let mut base = url::Url::parse(&args.server)
        .map_err(|_| format_err!("--server: {:?} is not a URL", args.server))?;
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    let sender = Sender::new(base, Credential::api_key(args.key.trim()));
    let target = match &args.topic {
        Some(topic) => Target::Topic(topic.clone()),
        None => Target::Ids(args.to.clone()),
    };
    let message = Message {
        data: args.data.clone(),
        collapse_key: args.collapse_key.clone(),
        time_to_live: args.ttl,
        dry_run: args.dry_run,
        ..Message::default()
    };
    let answer = sender.send(&target, &message).await?;
    let (value, accepted) = match &answer {
        Answer::Multicast { multicast_id, success, failure, results } => (
            json!({
                "multicast_id": multicast_id,
                "success": success,
                "failure": failure,
                "results": results.iter().map(outcome_json).collect::<Vec<_>>(),
            }),
            *success > 0,
        ),
        Answer::Topic(Ok(id)) => (json!({ "message_id": id }), true),
        Answer::Topic(Err(code)) => (json!({ "error": code }), false),
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(if accepted { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
