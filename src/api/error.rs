//! The one error type of the HTTP API: every failure is a status code plus
//! `{"error":{"code":"...","message":"..."}}`, so clients (the CLI, the web
//! page, scripts) handle errors one way on every route.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An API failure: HTTP status, a stable machine-readable code, and a
/// message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request itself is wrong (a bad body, parameter or value).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no or wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this API needs an `Authorization: Bearer <token>` header with the node's token",
        )
    }

    /// 403: authenticated, but not allowed (e.g. cancelling someone else's order).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 503: the node cannot serve it right now (e.g. shutting down).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500: a failure of the node itself.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl ApiError {
    /// The error body as JSON text, for answers written below axum.
    pub fn body_json(&self) -> String {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        };
        // A struct of two strings always serializes.
        serde_json::to_string(&body).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    /// axum's own refusals of a body, in our shape and with the status the
    /// API promises: 415 without a JSON content type, 413 past the size
    /// limit, 400 for anything else wrong with it (axum says 422 for JSON
    /// of the wrong shape; to a client that is bad input like any other).
    fn from(r: JsonRejection) -> Self {
        match &r {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON, with `Content-Type: application/json`",
            ),
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the body is larger than this node accepts (api.max_body_bytes)",
            ),
            JsonRejection::JsonSyntaxError(_) => ApiError::bad_request(
                "bad_body",
                format!("the body is not valid JSON: {}", cause(&r)),
            ),
            _ => ApiError::bad_request(
                "bad_body",
                format!("the body is not what this route takes: {}", cause(&r)),
            ),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(
            "bad_query",
            format!(
                "the query string is not what this route takes: {}",
                cause(&r)
            ),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request("bad_path", format!("the path is not valid: {}", cause(&r)))
    }
}

/// What is wrong, in serde's or the URL decoder's words, without the
/// framework's wording around it ("Failed to deserialize ..."): the
/// rejection's own cause, or its text when it has none.
fn cause(r: &(dyn std::error::Error + 'static)) -> String {
    let mut text = r.to_string();
    let mut source = r.source();
    while let Some(s) = source {
        text = s.to_string();
        // The first cause that is not the framework's wrapper is the one:
        // serde_path_to_error's names the field ("price: invalid type ...").
        if !text.starts_with("Failed to") {
            break;
        }
        source = s.source();
    }
    text
}

/// The fallback for unknown paths.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

/// The fallback for a known path with the wrong method.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// A count from the query that must be at least 1 when given (`limit`,
/// `depth`): 0 would answer an empty list that looks like "nothing there".
pub fn at_least_one(name: &str, value: Option<usize>) -> Result<Option<usize>, ApiError> {
    match value {
        Some(0) => Err(ApiError::bad_request(
            "bad_query",
            format!("{name} must be at least 1 (leave it out for the default)"),
        )),
        v => Ok(v),
    }
}
