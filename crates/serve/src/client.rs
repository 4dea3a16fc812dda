//! A minimal HTTP/1.1 client for loopback, for the benchmark (`simsweep bench serve`) and the
//! tests of the server: one request per connection (`Connection: close`), the path sent exactly as
//! given (nothing normalises it, so the tests can send `/../` as written), chunked bodies decoded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An answer: status, header block (status line included) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value (names compared ignoring case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `METHOD path` to `addr` (`127.0.0.1:PORT`, or a page URL `http://…/`), with `Host: host` (the
/// address itself when `None`); waits at most 60 s for the answer.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    host: Option<&str>,
) -> std::io::Result<Answer> {
    let addr = addr.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        host.unwrap_or(addr)
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let bad = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{what} in the answer to {method} {path}"),
        )
    };
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no HTTP header"))?;
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let mut body = buf[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok(Answer { status, head, body })
}

/// `GET path`: status and body.
pub fn get(addr: &str, path: &str) -> std::io::Result<Answer> {
    request(addr, "GET", path, None)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        let start = i + 2;
        out.extend_from_slice(&b[start..(start + n).min(b.len())]);
        b = &b[(start + n + 2).min(b.len())..];
    }
    out
}
