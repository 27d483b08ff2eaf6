//! `tessera push listen`: connects to a server as a push device, prints every message as one JSON
//! line as it arrives, and acknowledges it once printed. Reconnects by itself (the
//! `tessera-client` receiver); stops when the server refuses the device or its certificate, or
//! after `--count` messages. An `https://` server is reached over `wss://`, trusting the system's
//! roots and any `--ca-cert`.

use std::io::Write as _;
use std::process::ExitCode;

use base64::Engine as _;
use clap::Args;
use tessera_client::push::{Receiver, ReceiverConfig};

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
    /// A file of certificates (PEM, or one DER certificate) to trust as roots beside the system's,
    /// for a server behind a private certificate authority (repeat for several files).
    #[arg(long = "ca-cert")]
    ca_certs: Vec<std::path::PathBuf>,
}

pub(crate) async fn run(args: &ListenArgs) -> anyhow::Result<ExitCode> {
    let mut config = ReceiverConfig::new(
        args.server.clone(),
        args.device.clone(),
        args.credential.clone().into(),
        args.registrations.clone(),
    );
    for path in &args.ca_certs {
        let bytes = std::fs::read(path)
            .map_err(|err| anyhow::format_err!("reading {}: {err}", path.display()))?;
        match certificates(&bytes) {
            Some(certs) => config.extra_roots.extend(certs),
            None => {
                let path = path.display();
                return Ok(super::fail(format_args!("push listen: {path} holds no certificate")));
            }
        }
    }
    let mut receiver = Receiver::new(config);
    let mut printed = 0u64;
    while args.count.is_none_or(|count| printed < count) {
        let message = match receiver.next().await {
            Ok(message) => message,
            // Every error the receiver gives back is final: it retries the rest itself.
            Err(err) => return Ok(super::fail(format_args!("push listen: {err}"))),
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

/// The DER certificates in `bytes`: every `CERTIFICATE` block of a PEM file, or the file itself
/// when it is not PEM (one DER certificate). `None` when there is none or a block is not base64.
fn certificates(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return (bytes.first() == Some(&0x30)).then(|| vec![bytes.to_vec()]);
    };
    let mut found = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines().map(str::trim) {
        match (&mut block, line) {
            (None, "-----BEGIN CERTIFICATE-----") => block = Some(String::new()),
            (Some(body), "-----END CERTIFICATE-----") => {
                found.push(base64::engine::general_purpose::STANDARD.decode(&body).ok()?);
                block = None;
            }
            (Some(body), line) => body.push_str(line),
            (None, _) => {}
        }
    }
    (!found.is_empty()).then_some(found)
}

#[cfg(test)]
mod tests {
    use super::certificates;

    #[test]
    fn certificate_files_are_pem_or_der() {
        let pem = "junk\n-----BEGIN CERTIFICATE-----\nMAEC\nAw==\n-----END CERTIFICATE-----\n\
                   -----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        assert_eq!(certificates(pem.as_bytes()), Some(vec![vec![0x30, 1, 2, 3], vec![0x30, 0]]));
        assert_eq!(certificates(&[0x30, 0x82, 0xff]), Some(vec![vec![0x30, 0x82, 0xff]]));
        assert_eq!(certificates(b"no certificate here"), None);
        assert_eq!(
            certificates(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"),
            None
        );
    }
}
