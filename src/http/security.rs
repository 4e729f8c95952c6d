//! The checks every request passes: Host on every route; token and Origin
//! on mutating ones.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};

/// Every route: the Host header must name this server (against DNS
/// rebinding: a foreign site's name resolving to 127.0.0.1).
pub(crate) async fn check_host(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    // HTTP/2 carries the host in the URI's authority instead.
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host {
        Some(host) if is_allowed(&state, &host) => next.run(request).await,
        Some(host) => ApiError::new(
            StatusCode::FORBIDDEN,
            "foreign_host",
            format!(
                "Host {host:?} is not this server's; open it as http://{}/",
                state.config().bound
            ),
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::FORBIDDEN,
            "foreign_host",
            "the request names no Host",
        )
        .into_response(),
    }
}

/// Mutating routes: a foreign Origin is 403, a missing or wrong bearer
/// token 401.
pub(crate) async fn check_mutation(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    match authorize(&state, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let own = origin
            .strip_prefix("http://")
            .is_some_and(|host| is_allowed(state, host));
        if !own {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "foreign_origin",
                format!("requests from origin {origin:?} may not change anything here"),
            ));
        }
    }
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
    match offered {
        Some(offered) if state.config().token.matches(offered) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_token",
            "the bearer token is wrong: use the one `proctrack serve` printed",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no_token",
            "this route needs `Authorization: Bearer <token>`, the token `proctrack serve` printed",
        )),
    }
}

fn is_allowed(state: &ApiState, host: &str) -> bool {
    state
        .hosts()
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(host))
}
