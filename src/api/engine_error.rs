//! How the engine's refusals become HTTP errors.

use axum::http::StatusCode;

use super::error::ApiError;
use crate::driver::EngineGone;
use crate::engine::EngineError;

/// The HTTP error for an engine refusal. An unknown market is one answer
/// wherever it is named (path, query or body): 404 `unknown_market`.
/// `in_path` is kept for callers that name an order in the URL.
pub fn engine_error(e: EngineError, in_path: bool) -> ApiError {
    let _ = in_path;
    let message = e.to_string();
    match e {
        EngineError::UnknownMarket(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_market", message)
        }
        EngineError::Invalid(_) => ApiError::bad_request("bad_value", message),
        EngineError::NotFound(_) | EngineError::NotHeld(_) | EngineError::PastRetention(..) => {
            ApiError::not_found(message)
        }
        EngineError::NotOwner(_) => ApiError::forbidden(message),
        EngineError::AlreadyDone(..) => ApiError::conflict(message),
        EngineError::Storage(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            format!(
                "the node's storage is failing, so it takes no change it cannot make durable \
                 (see /api/v1/status; it retries by itself): {message}"
            ),
        ),
    }
}

/// The engine task is gone: the node is stopping.
pub fn gone(e: EngineGone) -> ApiError {
    ApiError::unavailable(e.to_string())
}
