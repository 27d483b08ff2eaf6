//! `tessera push listen`: connects to a server as a push device, prints every message as one JSON
//! line as it arrives, and acknowledges it once printed. Reconnects by itself (the
//! `tessera-client` receiver); stops when the server refuses the device, or after `--count`
//! messages.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Args;
use tessera_client::push::{PushError, Receiver, ReceiverConfig};

#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    /// The server's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    server: String,
    /// The device id of the credential (the Android ID, or the install id).
    #[arg(long)]
    device: String,
    /// The device credential (master token or install credential).
    #[arg(long, env = "TESSERA_PUSH_CREDENTIAL", hide_env_values = true)]
    credential: String,
    /// A registration id to receive for (repeat for several).
    #[arg(long = "registration", required = true)]
    registrations: Vec<String>,
    /// Stop after this many messages.
    #[arg(long)]
    count: Option<u64>,
}

pub(crate) async fn run(args: &ListenArgs) -> anyhow::Result<ExitCode> {
    let config = ReceiverConfig::new(
        args.server.clone(),
        args.device.clone(),
        args.credential.clone().into(),
        args.registrations.clone(),
    );
    let mut receiver = Receiver::new(config);
    let mut printed = 0u64;
    while args.count.is_none_or(|count| printed < count) {
        let message = match receiver.next().await {
            Ok(message) => message,
            Err(err @ PushError::Refused { .. }) | Err(err @ PushError::Config(_)) => {
                return Ok(super::fail(format_args!("push listen: {err}")));
            }
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", message.raw)?;
        out.flush()?;
        drop(out);
        receiver.ack(&message.message_id).await;
        printed += 1;
    }
    receiver.close().await;
    Ok(ExitCode::SUCCESS)
}
