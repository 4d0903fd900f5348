//! `GET /`: a minimal page pointing at the API until the web page arrives.

use std::sync::Arc;

use axum::response::Html;
use axum::routing::get;
use axum::Router;

use super::ApiState;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/", get(index))
}

async fn index() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><meta charset=utf-8><title>peerbook</title>",
        "<h1>peerbook ",
        env!("CARGO_PKG_VERSION"),
        "</h1><ul>",
        "<li><a href=/api/v1/status>/api/v1/status</a>",
        "<li><a href=/api/v1/peers>/api/v1/peers</a>",
        "<li><a href=/metrics>/metrics</a></ul>",
    ))
}
