//! The checks every request passes and the headers every answer carries:
//! Host and `Sec-Fetch-Site` on every route; the token (or the page's
//! session cookie) on every `/api/*` route; Origin on mutating ones.

use std::collections::VecDeque;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState, Token};

/// The Content-Security-Policy of every answer: the page's script, style
/// and requests come from this server only; nothing inline, no frames.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Sessions the page holds at most; a newer one pushes out the oldest.
const MAX_SESSIONS: usize = 64;

/// The page's sign-in: one one-time code (for the link the server prints)
/// and the session cookies handed out.
#[derive(Default)]
pub(crate) struct Sessions {
    /// The code of the printed link; spent by its first use.
    code: Option<Token>,
    /// Live session secrets, oldest first.
    live: VecDeque<Token>,
}

impl Sessions {
    pub(crate) fn set_code(&mut self, code: Token) {
        self.code = Some(code);
    }

    /// Spends the one-time code when `offered` is it.
    fn spend_code(&mut self, offered: &[u8]) -> bool {
        let matches = self.code.as_ref().is_some_and(|code| code.matches(offered));
        if matches {
            self.code = None;
        }
        matches
    }

    fn open(&mut self, secret: Token) {
        if self.live.len() >= MAX_SESSIONS {
            self.live.pop_front();
        }
        self.live.push_back(secret);
    }

    fn holds(&self, offered: &[u8]) -> bool {
        // Every secret is compared: the time does not tell which matched.
        self.live
            .iter()
            .fold(false, |found, secret| secret.matches(offered) | found)
    }
}

/// Every route: the Host header must name this server (against DNS
/// rebinding: a foreign site's name resolving to 127.0.0.1), and a request
/// a browser made for another site is refused. Every answer gets the
/// security headers.
pub(crate) async fn check_host(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = match check_request(&state, &request, api) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    };
    add_headers(response.headers_mut(), api);
    response
}

fn check_request(state: &ApiState, request: &Request, api: bool) -> Result<(), ApiError> {
    // HTTP/2 carries the host in the URI's authority instead.
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host {
        Some(host) if is_allowed(state, &host) => {}
        Some(host) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "foreign_host",
                format!(
                    "Host {host:?} is not this server's; open it as http://{}/",
                    state.config().bound
                ),
            ));
        }
        None => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "foreign_host",
                "the request names no Host",
            ));
        }
    }
    // A browser says which site made the request: a page of another site
    // (or, for the API, another port of this host) is refused outright.
    let site = request
        .headers()
        .get("sec-fetch-site")
        .map(HeaderValue::as_bytes);
    let foreign = match site {
        Some(b"cross-site") => true,
        Some(b"same-site") => api,
        _ => false,
    };
    if foreign {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "foreign_site",
            format!(
                "a page of another site may not use this server; open http://{}/ yourself",
                state.config().bound
            ),
        ));
    }
    Ok(())
}

fn add_headers(headers: &mut HeaderMap, api: bool) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Every `/api/*` route but the sign-in: the bearer token or a session
/// cookie, else 401.
pub(crate) async fn check_read(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    match authenticate(&state, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// Mutating routes: a foreign Origin is 403; then as [`check_read`].
pub(crate) async fn check_mutation(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    match check_origin(&state, request.headers())
        .and_then(|()| authenticate(&state, request.headers()))
    {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

fn check_origin(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let own = origin
            .strip_prefix("http://")
            .is_some_and(|host| is_allowed(state, host));
        if !own {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "foreign_origin",
                format!("requests from origin {origin:?} may not use this route"),
            ));
        }
    }
    Ok(())
}

/// The bearer token, else the session cookie.
fn authenticate(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return match value.as_bytes().strip_prefix(b"Bearer ") {
            Some(offered) if state.config().token.matches(offered) => Ok(()),
            _ => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_token",
                "the bearer token is wrong: send `Authorization: Bearer <token>` with the token `proctrack serve` printed",
            )),
        };
    }
    if let Some(offered) = session_cookie(state, headers) {
        let sessions = state.sessions();
        return if sessions.holds(offered.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_session",
                "the session has ended (the server restarted, or many sign-ins since): open the link `proctrack serve` printed again, or sign in with the token",
            ))
        };
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "no_token",
        "every /api route needs `Authorization: Bearer <token>` (the token `proctrack serve` printed), or the page's session: open the link it printed",
    ))
}

/// The name of this server's session cookie: cookies do not tell ports
/// apart, so the port is in the name.
pub(crate) fn cookie_name(state: &ApiState) -> String {
    format!("proctrack_session_{}", state.config().bound.port())
}

fn session_cookie(state: &ApiState, headers: &HeaderMap) -> Option<String> {
    let name = cookie_name(state);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// How the page signs in (`POST /api/session`): with the one-time code of
/// the printed link (`{"code": "..."}`) or with the token (bearer header).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    #[serde(default)]
    code: Option<String>,
}

/// `POST /api/session`: trades the one-time code, or the token, for a
/// session cookie (HttpOnly, SameSite=Strict, Path=/).
pub(crate) async fn sign_in(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<axum::Json<SignIn>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    check_origin(&state, &headers)?;
    let axum::Json(request) = body.map_err(|rejection| {
        ApiError::bad_request(format!(
            "{}; send {{\"code\": \"<the code of the printed link>\"}}, or an empty object {{}} with `Authorization: Bearer <token>`",
            rejection.body_text()
        ))
    })?;
    match &request.code {
        Some(code) => {
            if !state.sessions().spend_code(code.as_bytes()) {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "bad_code",
                    "this sign-in link is spent or wrong (a link works once): sign in with the token `proctrack serve` printed",
                ));
            }
        }
        None => authenticate(&state, &headers)?,
    }
    let secret = Token::generate()?;
    let cookie = format!(
        "{}={secret}; HttpOnly; SameSite=Strict; Path=/",
        cookie_name(&state)
    );
    state.sessions().open(secret);
    let cookie = HeaderValue::from_str(&cookie)
        .map_err(|_| ApiError::internal("the session cookie is not a header value"))?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

fn is_allowed(state: &ApiState, host: &str) -> bool {
    state
        .hosts()
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(host))
}
