//! A bare HTTP/1.1 client over a TCP stream, for requests an ordinary client
//! would not send: paths it would normalise (`/../`), bodies without a
//! length, odd methods and headers. One request per connection.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Longest a read may block: only a guard against a hung node.
const READ_GUARD: Duration = Duration::from_secs(60);

/// A response as read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// How the body travels.
pub enum Body<'a> {
    None,
    /// With `Content-Length`.
    Sized(&'a [u8]),
    /// With `Transfer-Encoding: chunked`, in chunks of the given size.
    Chunked(&'a [u8], usize),
}

/// Send one request: `head` is the request line and headers without the
/// final blank line and without `Host`, `Connection`, or the body's length
/// headers, which this adds. Reads the whole answer (an event stream, or
/// the answer to `HEAD`, only up to its headers). `Err` only when the node
/// could not be talked to.
pub fn send(addr: SocketAddr, head: &str, body: Body<'_>) -> std::io::Result<RawResponse> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(READ_GUARD))?;
    stream.set_write_timeout(Some(READ_GUARD))?;
    let mut out = Vec::new();
    out.extend_from_slice(head.trim_end_matches("\r\n").as_bytes());
    out.extend_from_slice(format!("\r\nHost: {addr}\r\nConnection: close\r\n").as_bytes());
    match body {
        Body::None => out.extend_from_slice(b"\r\n"),
        Body::Sized(b) => {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
        }
        Body::Chunked(b, size) => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for chunk in b.chunks(size.max(1)) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
    // The node may answer (413) and close before reading everything sent;
    // what it answered is still there to read.
    let _ = stream.write_all(&out);
    read_response(&mut stream, head.starts_with("HEAD "))
}

fn read_response(stream: &mut TcpStream, head_only: bool) -> std::io::Result<RawResponse> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            // An interim answer (`100 Continue`): the real one follows.
            if buf.starts_with(b"HTTP/1.1 1") && !buf.starts_with(b"HTTP/1.1 101") {
                buf.drain(..i + 4);
                continue;
            }
            break i;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(bad(format!(
                "connection closed before the headers ended: {:?}",
                String::from_utf8_lossy(&buf)
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    if head_only || get("content-type").is_some_and(|t| t.starts_with("text/event-stream")) {
        return Ok(RawResponse {
            status,
            headers,
            body: Vec::new(),
        });
    }
    let mut read_more = |rest: &mut Vec<u8>| -> std::io::Result<bool> {
        let n = stream.read(&mut chunk)?;
        rest.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    };
    let body = if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while rest.len() < len {
            if !read_more(&mut rest)? {
                return Err(bad(format!(
                    "body ended after {} of {len} bytes",
                    rest.len()
                )));
            }
        }
        rest.truncate(len);
        rest
    } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                if !read_more(&mut rest)? {
                    return Err(bad("chunked body ended early".into()));
                }
            };
            let size_text = String::from_utf8_lossy(&rest[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad(format!("bad chunk size {size_text:?}")))?;
            rest.drain(..line_end + 2);
            if size == 0 {
                break body;
            }
            while rest.len() < size + 2 {
                if !read_more(&mut rest)? {
                    return Err(bad("chunk ended early".into()));
                }
            }
            body.extend_from_slice(&rest[..size]);
            rest.drain(..size + 2);
        }
    } else {
        while read_more(&mut rest)? {}
        rest
    };
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}
