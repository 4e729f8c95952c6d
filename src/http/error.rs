//! The API's errors: a status and a JSON body `{error, message}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::Error;

/// An error answer: its status, a short code (`"stale_identity"`) and a
/// message that says what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable code for programs.
    pub error: &'static str,
    /// What is wrong and what to do, for people.
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error of this status, code and message.
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        let message = error.to_string();
        match error {
            Error::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            Error::InvalidPid { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_pid", message)
            }
            Error::Refused { .. } => ApiError::new(StatusCode::FORBIDDEN, "refused", message),
            Error::PermissionDenied { .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_denied",
                format!("{message}: the server may not do this; run it as that user or root"),
            ),
            Error::Unsupported { .. } => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, "unsupported", message)
            }
            _ => ApiError::internal(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.error,
            message: &self.message,
        };
        (self.status, Json(body)).into_response()
    }
}
