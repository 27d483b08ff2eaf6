//! A minimal HTTP/1.1 client over a keep-alive `TcpStream`: just what the load generator needs.
//!
//! One request at a time per connection (no pipelining); bodies framed by Content-Length, chunked
//! transfer coding, or connection close. A request that fails on a reused connection before any
//! byte of the answer arrived (the server closed an idle connection) is retried once on a fresh one.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    /// (name, value) pairs, names as sent.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub(crate) fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The start of the body as text, for error messages.
    pub(crate) fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text: String = text.chars().take(200).collect();
        text.replace(['\n', '\r'], " ")
    }
}

#[derive(Debug)]
pub(crate) enum HttpError {
    /// Failed before any byte of the answer arrived: safe to retry on a fresh connection.
    Stale(std::io::Error),
    Io(std::io::Error),
    Protocol(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Stale(e) | HttpError::Io(e) => write!(f, "i/o: {e}"),
            HttpError::Protocol(m) => write!(f, "protocol: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// One keep-alive connection to one address, reconnecting as needed.
pub(crate) struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    used: bool,
    pub(crate) reconnects: u64,
}

impl Conn {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Conn { addr, stream: None, buf: Vec::with_capacity(16 * 1024), used: false, reconnects: 0 }
    }

    /// Drops the connection; the next request opens a new one.
    pub(crate) fn reset(&mut self) {
        self.stream = None;
        self.buf.clear();
        self.used = false;
    }

    pub(crate) async fn send(&mut self, request: &[u8]) -> Result<Response, HttpError> {
        for attempt in 0..2 {
            if self.stream.is_none() {
                let stream = TcpStream::connect(self.addr).await.map_err(HttpError::Io)?;
                stream.set_nodelay(true).map_err(HttpError::Io)?;
                self.stream = Some(stream);
                self.buf.clear();
                if self.used {
                    self.reconnects += 1;
                }
                self.used = false;
            }
            let reused = self.used;
            match self.exchange(request).await {
                Ok((resp, keep)) => {
                    self.used = true;
                    if !keep {
                        self.stream = None;
                        self.buf.clear();
                    }
                    return Ok(resp);
                }
                Err(HttpError::Stale(_)) if reused && attempt == 0 => {
                    self.stream = None;
                    self.used = true;
                }
                Err(e) => {
                    self.reset();
                    return Err(e);
                }
            }
        }
        Err(HttpError::Protocol("connection closed twice in a row".into()))
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<(Response, bool), HttpError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(HttpError::Protocol("not connected".into()));
        };
        stream.write_all(request).await.map_err(HttpError::Stale)?;
        let mut tmp = [0u8; 16 * 1024];
        let mut got_any = !self.buf.is_empty();
        // The head.
        let (status, headers, head_len) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut slots);
            match parsed.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = parsed.code.unwrap_or(0);
                    let headers = parsed
                        .headers
                        .iter()
                        .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
                        .collect::<Vec<_>>();
                    break (status, headers, n);
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > MAX_HEAD {
                        return Err(HttpError::Protocol("response head too large".into()));
                    }
                }
                Err(e) => return Err(HttpError::Protocol(format!("bad response head: {e}"))),
            }
            let n = read_some(stream, &mut tmp, got_any).await?;
            self.buf.extend_from_slice(&tmp[..n]);
            got_any = true;
        };
        let mut resp = Response { status, headers, body: Vec::new() };
        let mut keep = !resp.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = resp.header("content-length").map(|v| v.trim().parse::<usize>());
        let consumed = if (100..200).contains(&status) || status == 204 || status == 304 {
            head_len
        } else if chunked {
            loop {
                match decode_chunked(&self.buf[head_len..]) {
                    Chunked::Done { body, used } => {
                        resp.body = body;
                        break head_len + used;
                    }
                    Chunked::NeedMore => {
                        let n = read_some(stream, &mut tmp, true).await?;
                        self.buf.extend_from_slice(&tmp[..n]);
                    }
                    Chunked::Bad(m) => return Err(HttpError::Protocol(m)),
                }
            }
        } else if let Some(length) = length {
            let length = length.map_err(|_| HttpError::Protocol("bad content-length".into()))?;
            while self.buf.len() < head_len + length {
                let n = read_some(stream, &mut tmp, true).await?;
                self.buf.extend_from_slice(&tmp[..n]);
            }
            resp.body = self.buf[head_len..head_len + length].to_vec();
            head_len + length
        } else {
            // Delimited by the end of the connection.
            loop {
                let n = stream.read(&mut tmp).await.map_err(HttpError::Io)?;
                if n == 0 {
                    break;
                }
                self.buf.extend_from_slice(&tmp[..n]);
            }
            keep = false;
            resp.body = self.buf[head_len..].to_vec();
            self.buf.len()
        };
        self.buf.drain(..consumed);
        Ok((resp, keep))
    }
}

/// Reads at least one byte; end of stream is an error (stale if nothing of the answer came yet).
async fn read_some(
    stream: &mut TcpStream,
    tmp: &mut [u8],
    got_any: bool,
) -> Result<usize, HttpError> {
    let wrap = |e: std::io::Error| if got_any { HttpError::Io(e) } else { HttpError::Stale(e) };
    let n = stream.read(tmp).await.map_err(wrap)?;
    if n == 0 {
        return Err(wrap(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed by the server",
        )));
    }
    Ok(n)
}

#[derive(Debug, PartialEq)]
enum Chunked {
    Done { body: Vec<u8>, used: usize },
    NeedMore,
    Bad(String),
}

/// Decodes a complete chunked body from the start of `data`, if all of it is there.
fn decode_chunked(data: &[u8]) -> Chunked {
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let Some(eol) = find_crlf(&data[pos..]) else { return Chunked::NeedMore };
        let line = &data[pos..pos + eol];
        let size_text = String::from_utf8_lossy(line);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return Chunked::Bad(format!("bad chunk size {size_text:?}"));
        };
        pos += eol + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(eol) = find_crlf(&data[pos..]) else { return Chunked::NeedMore };
                pos += eol + 2;
                if eol == 0 {
                    return Chunked::Done { body, used: pos };
                }
            }
        }
        if data.len() < pos + size + 2 {
            return Chunked::NeedMore;
        }
        body.extend_from_slice(&data[pos..pos + size]);
        pos += size + 2;
    }
}

fn find_crlf(data: &[u8]) -> Option<usize> {
    data.windows(2).position(|w| w == b"\r\n")
}

/// Serialises one request. `body` is (content type, bytes).
pub(crate) fn request(
    method: &str,
    target: &str,
    host: &str,
    headers: &[(String, String)],
    body: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.map_or(0, |(_, b)| b.len()));
    out.extend_from_slice(
        format!("{method} {target} HTTP/1.1\r\nhost: {host}\r\nuser-agent: tessera-bench\r\n")
            .as_bytes(),
    );
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    match body {
        Some((content_type, bytes)) => {
            out.extend_from_slice(
                format!("content-type: {content_type}\r\ncontent-length: {}\r\n\r\n", bytes.len())
                    .as_bytes(),
            );
            out.extend_from_slice(bytes);
        }
        None if method != "GET" && method != "HEAD" => {
            out.extend_from_slice(b"content-length: 0\r\n\r\n")
        }
        None => out.extend_from_slice(b"\r\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_once_complete() {
        let data = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\nNEXT";
        assert_eq!(
            decode_chunked(data),
            Chunked::Done { body: b"Wikipedia".to_vec(), used: data.len() - 4 }
        );
        assert_eq!(decode_chunked(b"4\r\nWiki\r\n5\r\npe"), Chunked::NeedMore);
        assert_eq!(decode_chunked(b"4\r\nWiki\r\n0\r\n"), Chunked::NeedMore);
        assert_eq!(
            decode_chunked(b"0\r\nx-trailer: 1\r\n\r\n"),
            Chunked::Done { body: Vec::new(), used: 19 }
        );
        assert!(matches!(decode_chunked(b"zz\r\n"), Chunked::Bad(_)));
    }

    #[test]
    fn requests_carry_length_and_host() {
        let r = request(
            "POST",
            "/t",
            "127.0.0.1:9",
            &[("cookie".into(), "a=b".into())],
            Some(("text/plain", b"hi")),
        );
        let text = String::from_utf8(r).unwrap_or_default();
        assert_eq!(
            text,
            "POST /t HTTP/1.1\r\nhost: 127.0.0.1:9\r\nuser-agent: tessera-bench\r\ncookie: a=b\r\n\
             content-type: text/plain\r\ncontent-length: 2\r\n\r\nhi"
        );
        let r = request("POST", "/t", "h", &[], None);
        assert!(r.ends_with(b"content-length: 0\r\n\r\n"));
        let r = request("GET", "/", "h", &[], None);
        assert!(r.ends_with(b"tessera-bench\r\n\r\n"));
    }

    #[tokio::test]
    async fn keep_alive_chunked_and_reconnect_against_a_tiny_server() -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            // First connection: two answers (one chunked), then the server closes it.
            let (mut s, _) = listener.accept().await?;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await?;
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await?;
            let _ = s.read(&mut buf).await?;
            s.write_all(
                b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            )
            .await?;
            drop(s);
            // Second connection: the retried request.
            let (mut s, _) = listener.accept().await?;
            let _ = s.read(&mut buf).await?;
            s.write_all(b"HTTP/1.1 303 See Other\r\nset-cookie: A=1\r\nset-cookie: B=2\r\ncontent-length: 0\r\n\r\n")
                .await?;
            anyhow::Ok(())
        });
        let mut conn = Conn::new(addr);
        let req = request("GET", "/", "h", &[], None);
        let a = conn.send(&req).await?;
        assert_eq!((a.status, a.body.as_slice()), (200, b"ok".as_slice()));
        let b = conn.send(&req).await?;
        assert_eq!((b.status, b.body.as_slice()), (201, b"abc".as_slice()));
        let c = conn.send(&req).await?;
        assert_eq!(c.status, 303);
        assert_eq!(c.header_all("Set-Cookie").collect::<Vec<_>>(), ["A=1", "B=2"]);
        assert_eq!(conn.reconnects, 1);
        server.await??;
        Ok(())
    }
}
