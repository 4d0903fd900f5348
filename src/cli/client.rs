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
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i + 1 == r.len() {
                    s.clone()
                } else {
                    format!("{s:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
