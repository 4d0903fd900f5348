//! The CLI's side of the HTTP API: one client for every command that talks
//! to a node (`status`, `order`, `book`, `trades`, `peers`, `demo`).
//!
//! It finds the node from `--api` or `PEERBOOK_API` (with or without
//! `http://`, so the node's own `PEERBOOK_API=127.0.0.1:8080` works), sends
//! `PEERBOOK_API_TOKEN` as a bearer token when set, and turns the node's
//! `{"error":{..}}` answers into an error that shows them as the node wrote
//! them.

use clap::Args;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Flags of every command that talks to a node.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The node's API (host:port or URL)
    #[arg(
        long = "api",
        value_name = "URL",
        env = "PEERBOOK_API",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub api: String,
    /// Bearer token, needed when the node's API is not on loopback
    #[arg(
        long,
        value_name = "TOKEN",
        env = "PEERBOOK_API_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// Print the node's JSON instead of a table
    #[arg(long, global = true)]
    pub json: bool,
    /// Show times in this host's zone (with their offset) instead of UTC
    #[arg(long, global = true, env = "PEERBOOK_LOCAL_TIME")]
    pub local_time: bool,
}

impl ApiArgs {
    /// The zone tables show times in.
    pub fn zone(&self) -> super::format::Zone {
        super::format::Zone::new(self.local_time)
    }
}

/// Why a command could not do what was asked of the node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0:?} is not a valid API address (expected host:port or http://host:port)")]
    BadUrl(String),
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The node refused: its status, code and message as it wrote them.
    #[error("the node answered {status}: {message} ({code})")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("the node's answer to {what} is not what this CLI expects: {reason}")]
    BadAnswer { what: String, reason: String },
    #[error("{0}")]
    Usage(String),
}

/// A connection to one node's API.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(args: &ApiArgs) -> Result<Client, ClientError> {
        let raw = args.api.trim().trim_end_matches('/');
        let base = if raw.contains("://") {
            raw.to_string()
        } else {
            format!("http://{raw}")
        };
        if reqwest::Url::parse(&base).is_err() || raw.is_empty() {
            return Err(ClientError::BadUrl(args.api.clone()));
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Unreachable {
                url: base.clone(),
                reason: e.to_string(),
            })?;
        Ok(Client {
            base,
            token: args.token.clone().filter(|t| !t.is_empty()),
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Send a request and decode the JSON answer (or the node's error).
    pub async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            reason: root_cause(&e),
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            reason: root_cause(&e),
        })?;
        if !status.is_success() {
            let parsed: Option<serde_json::Value> = serde_json::from_str(&text).ok();
            let field = |k: &str| {
                parsed
                    .as_ref()
                    .and_then(|v| v.get("error"))
                    .and_then(|e| e.get(k))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            return Err(ClientError::Api {
                status,
                code: field("code").unwrap_or_else(|| "unknown".into()),
                message: field("message").unwrap_or_else(|| text.trim().to_string()),
            });
        }
        serde_json::from_str(&text).map_err(|e| ClientError::BadAnswer {
            what: path.to_string(),
            reason: e.to_string(),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send::<(), T>(Method::GET, path, None).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send::<(), T>(Method::DELETE, path, None).await
    }
}

/// `?key=value&…` of the parameters that are set (empty if none), each
/// percent-encoded.
pub fn query(params: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v, false))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Percent-encode `s` for a URL path segment (`keep_slash`: an order id's
/// `/` stays, the API's route takes the rest of the path) or query value.
pub fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The innermost cause of a transport error ("Connection refused"), which
/// is what an operator needs to read.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Print `value` as pretty JSON (for `--json`).
pub fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot print JSON: {e}"),
    }
}

/// Print rows as a table with aligned columns; the first row is the header.
pub fn print_table(rows: &[Vec<String>]) {
    print_aligned(rows, &[]);
}

/// Like [`print_table`], with the columns in `right` aligned to the right
/// (numbers, so their digits line up).
pub fn print_aligned(rows: &[Vec<String>], right: &[usize]) {
    for line in table_lines(rows, right) {
        println!("{line}");
    }
}

/// The lines of a table: columns padded to their widest cell, two spaces
/// apart, no trailing blanks.
pub fn table_lines(rows: &[Vec<String>], right: &[usize]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let w = widths[i];
                    if right.contains(&i) {
                        format!("{s:>w$}")
                    } else if i + 1 == r.len() {
                        s.clone()
                    } else {
                        format!("{s:<w$}")
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_and_ids_are_percent_encoded() {
        assert_eq!(query(&[("a", None)]), "");
        assert_eq!(
            query(&[
                ("market", Some("BTC-USD".into())),
                ("x", None),
                ("s", Some("a b&c".into()))
            ]),
            "?market=BTC-USD&s=a%20b%26c"
        );
        assert_eq!(encode("12D3Koo/7", true), "12D3Koo/7");
        assert_eq!(encode("a/b?#", false), "a%2Fb%3F%23");
    }

    #[test]
    fn table_columns_line_up_and_numbers_align_right() {
        let rows = vec![
            vec!["NAME".to_string(), "QTY".into(), "NOTE".into()],
            vec!["a".into(), "1.5".into(), "x".into()],
            vec!["longer".into(), "10".into(), "".into()],
        ];
        assert_eq!(
            table_lines(&rows, &[1]),
            ["NAME    QTY  NOTE", "a       1.5  x", "longer   10"]
        );
    }
}
