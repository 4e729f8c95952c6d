//! The HTTP API's answers to bad input and its security rules, through the
//! router itself (`tower::ServiceExt::oneshot`): nothing is killed by any
//! refused request, checked on a spawned tree that stays alive.
#![cfg(target_os = "linux")]

mod support;

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use proctrack::http::{ApiConfig, ApiState, MAX_BODY, Token, router};
use proctrack::table::ProcessTable;
use proctrack::{Pid, ProcessIdentity};
use serde_json::Value;
use support::SpawnedTree;
use tower::ServiceExt;

const BOUND: &str = "127.0.0.1:8787";
const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn state() -> ApiState {
    let bound: SocketAddr = BOUND.parse().unwrap();
    ApiState::new(ApiConfig::new(bound, Token::new(SECRET).unwrap())).unwrap()
}

/// A request to the router, from a well-behaved local client unless the
/// caller overrides a header.
struct Call {
    method: &'static str,
    uri: String,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Call {
    fn get(uri: impl Into<String>) -> Call {
        Call {
            method: "GET",
            uri: uri.into(),
            headers: vec![
                ("host", BOUND.into()),
                ("authorization", format!("Bearer {SECRET}")),
            ],
            body: String::new(),
        }
    }

    fn kill(pid: impl std::fmt::Display, body: impl Into<String>) -> Call {
        Call {
            method: "POST",
            uri: format!("/api/processes/{pid}/kill"),
            headers: vec![
                ("host", BOUND.into()),
                ("authorization", format!("Bearer {SECRET}")),
                ("content-type", "application/json".into()),
            ],
            body: body.into(),
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Call {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.into()));
        self
    }

    fn without(mut self, name: &'static str) -> Call {
        self.headers.retain(|(n, _)| *n != name);
        self
    }

    fn request(self) -> Request<Body> {
        let mut request = Request::builder().method(self.method).uri(self.uri);
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        request.body(Body::from(self.body)).unwrap()
    }

    async fn send(self) -> (StatusCode, Value) {
        self.send_to(&state()).await
    }

    async fn send_to(self, state: &ApiState) -> (StatusCode, Value) {
        let response = router(state.clone()).oneshot(self.request()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        (status, body)
    }
}

/// Asserts an error answer: this status, a JSON body with this code and a message.
fn assert_error((status, body): (StatusCode, Value), want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

fn body_for(identity: ProcessIdentity) -> String {
    format!(
        r#"{{"start_time": {}, "signal": "SIGKILL"}}"#,
        identity.start_time().as_raw()
    )
}

/// A tree of three: the root and two `read`ers, all blocking on stdin.
fn spawn_tree() -> (SpawnedTree, Vec<ProcessIdentity>) {
    let mut tree = SpawnedTree::shell(
        "exec 3<&0; sh -c 'echo $$; read _' <&3 & sh -c 'echo $$; read _' <&3 & echo ready; wait",
    );
    // Two pids and "ready", in any order.
    let lines = tree.read_lines(3);
    assert!(lines.iter().any(|l| l == "ready"), "{lines:?}");
    let members = tree
        .members()
        .iter()
        .map(|p| p.identity())
        .collect::<Vec<_>>();
    assert_eq!(members.len(), 3);
    (tree, members)
}

fn assert_alive(tree: &mut SpawnedTree, members: &[ProcessIdentity]) {
    let now: Vec<ProcessIdentity> = tree.members().iter().map(|p| p.identity()).collect();
    assert_eq!(now, members, "a refused request killed something");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_kills_kill_nothing() {
    let (mut tree, members) = spawn_tree();
    let root = tree.root();
    let good = body_for(root);
    let pid = root.pid();

    // Token.
    assert_error(
        Call::kill(pid, &good).without("authorization").send().await,
        StatusCode::UNAUTHORIZED,
        "no_token",
    );
    for wrong in [
        "Bearer 0123456789abcdef0123456789abcdeX".to_owned(),
        "Bearer short".to_owned(),
        format!("Basic {SECRET}"),
        format!("Bearer {SECRET}{SECRET}"),
    ] {
        let (status, body) = Call::kill(pid, &good)
            .header("authorization", wrong.clone())
            .send()
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong}: {body}");
    }

    // Origin and Host.
    for origin in [
        "http://evil.example",
        "https://127.0.0.1:8787",
        "http://127.0.0.1:9999",
        "null",
    ] {
        assert_error(
            Call::kill(pid, &good).header("origin", origin).send().await,
            StatusCode::FORBIDDEN,
            "foreign_origin",
        );
    }
    for host in [
        "evil.example",
        "evil.example:8787",
        "127.0.0.1:9999",
        "localhost",
    ] {
        assert_error(
            Call::kill(pid, &good).header("host", host).send().await,
            StatusCode::FORBIDDEN,
            "foreign_host",
        );
        assert_error(
            Call::get("/api/processes")
                .header("host", host)
                .send()
                .await,
            StatusCode::FORBIDDEN,
            "foreign_host",
        );
    }
    assert_error(
        Call::get("/api/processes").without("host").send().await,
        StatusCode::FORBIDDEN,
        "foreign_host",
    );

    // Identity: a start time that is not this process's.
    let stale = format!(r#"{{"start_time": {}}}"#, root.start_time().as_raw() + 1);
    assert_error(
        Call::kill(pid, stale).send().await,
        StatusCode::CONFLICT,
        "stale_identity",
    );

    // Pids.
    for bad in ["0", "-1", "abc", "4294967296", "2147483648", "1.5", "%20"] {
        assert_error(
            Call::kill(bad, &good).send().await,
            StatusCode::BAD_REQUEST,
            "invalid_pid",
        );
    }
    assert_error(
        Call::get("/api/processes/abc").send().await,
        StatusCode::BAD_REQUEST,
        "invalid_pid",
    );
    assert_error(
        Call::get("/api/processes?root=-1").send().await,
        StatusCode::BAD_REQUEST,
        "invalid_pid",
    );

    // Bodies.
    for bad in [
        "",
        "{",
        "[]",
        r#"{"start_time": "x"}"#,
        r#"{"start_time": 1, "signal": "SIGNOPE"}"#,
        r#"{"start_time": 1, "guard": "off"}"#,
    ] {
        assert_error(
            Call::kill(pid, bad).send().await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        );
    }
    assert_error(
        Call::kill(pid, &good)
            .header("content-type", "text/plain")
            .send()
            .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    let huge = format!(
        r#"{{"start_time": {}, "signal": "SIGKILL"{}}}"#,
        root.start_time().as_raw(),
        " ".repeat(MAX_BODY)
    );
    assert_error(
        Call::kill(pid, huge).send().await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );

    assert_alive(&mut tree, &members);
    support::assert_no_leftovers(&tree.finish());
}

#[tokio::test(flavor = "multi_thread")]
async fn guard_rails_are_403() {
    let table = ProcessTable::new().unwrap();
    let me = table.get(Pid::current()).unwrap().identity();
    let init = table.get(Pid::try_from(1_u32).unwrap()).unwrap().identity();
    let parent = table.parent(Pid::current()).unwrap().identity();
    for target in [me, init, parent] {
        assert_error(
            Call::kill(target.pid(), body_for(target)).send().await,
            StatusCode::FORBIDDEN,
            "refused",
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_and_kills_a_tree() {
    let (tree, members) = spawn_tree();
    let root = tree.root();

    let (status, body) = Call::get(format!("/api/processes?root={}", root.pid()))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 3);
    let tree_json = &body["trees"][0];
    assert_eq!(tree_json["process"]["identity"]["pid"], root.pid().as_u32());
    assert_eq!(tree_json["children"].as_array().unwrap().len(), 2);

    let (status, body) = Call::get(format!("/api/processes/{}", members[1].pid()))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["parent"], root.pid().as_u32());

    // Read as text: other `sh` trees on the machine may nest deeper than
    // serde_json's recursion limit for parsing.
    let response = router(state())
        .oneshot(Call::get("/api/processes?name=sh").request())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let count: u64 = text
        .strip_prefix(r#"{"count":"#)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", &text[..text.len().min(200)]));
    assert!(count >= 3, "{count}");

    // The page's own origin may kill, with the token.
    let (status, report) = Call::kill(root.pid(), body_for(root))
        .header("origin", format!("http://{BOUND}"))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["killed"].as_array().unwrap().len(), 3, "{report}");
    for member in &members {
        support::wait_for_exit(member.pid());
    }
    support::assert_no_leftovers(&tree.finish());
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_and_pids_are_json_404() {
    assert_error(
        Call::get("/api/nothing").send().await,
        StatusCode::NOT_FOUND,
        "no_route",
    );
    let (status, body) = Call::get(format!("/api/processes/{}", i32::MAX))
        .send()
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = Call::get("/api/ports/notaport").send().await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_stream_tells_of_a_new_tree() {
    use futures_util::StreamExt;

    let request = Call::get("/api/events").request();
    let response = router(state()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body().into_data_stream();
    let mut seen = String::new();
    let mut next_until = async |want: &dyn Fn(&str) -> bool, seen: &mut String| {
        tokio::time::timeout(support::HANG_GUARD, async {
            while !want(seen) {
                let chunk = body.next().await.expect("the stream ended").unwrap();
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("not seen in the event stream: {seen}"));
    };
    next_until(&|s| s.contains("event: ready"), &mut seen).await;

    let (tree, members) = spawn_tree();
    let spawned = format!(r#""Spawned":{{"process":{{"pid":{}"#, members[1].pid());
    next_until(&|s| s.contains(&spawned), &mut seen).await;
    support::assert_no_leftovers(&tree.finish());
}

#[tokio::test(flavor = "multi_thread")]
async fn port_holders_include_us() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (status, body) = Call::get(format!("/api/ports/{port}")).send().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let holders = body["listeners"][0]["holders"].to_string();
    assert!(
        holders.contains(&format!("\"pid\":{}", std::process::id())),
        "{body}"
    );
    drop(listener);
}

/// `GET /api/jobs`: 404 without a supervisor; with one, its jobs with their
/// containment and live members.
#[test]
fn jobs_lists_the_supervisors_jobs() {
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use proctrack::supervisor::{Supervisor, SupervisorOptions};

    // No serial guard and no subreaper: the other tests of this file run
    // alongside, and their orphans and their sweep are theirs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let get_at = |uri: &str, state: ApiState| {
        let request = Call::get(uri).request();
        runtime.block_on(async {
            let response = router(state).oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        })
    };
    let get = |state: ApiState| get_at("/api/jobs", state);
    assert_error(get(state()), StatusCode::NOT_FOUND, "no_supervisor");
    // Without jobs, no marks.
    assert_eq!(
        get_at("/api/marks", state()),
        (StatusCode::OK, serde_json::json!({ "marks": [] }))
    );

    let supervisor = Arc::new(Mutex::new(
        Supervisor::new(
            SupervisorOptions::new(support::unique_marker("http").replace('-', "_"))
                .subreaper(false),
        )
        .unwrap(),
    ));
    let id = {
        let mut supervisor = supervisor.lock().unwrap();
        let mut command = supervisor.command("sh");
        command
            .args(["-c", "sleep 600 & echo ready; exec sleep 600"])
            .stdout(Stdio::piped());
        let id = supervisor.spawn(command).unwrap();
        let stdout = supervisor.child_mut(&id).unwrap().stdout.take().unwrap();
        assert_eq!(support::Lines::new(stdout).line(), "ready");
        id
    };
    let bound: SocketAddr = BOUND.parse().unwrap();
    let config =
        ApiConfig::new(bound, Token::new(SECRET).unwrap()).supervisor(Arc::clone(&supervisor));
    let state = ApiState::new(config).unwrap();
    let (status, body) = get(state.clone());
    assert_eq!(status, StatusCode::OK, "{body}");
    let jobs = body.as_array().expect("a list");
    assert_eq!(jobs.len(), 1, "{body}");
    let job = &jobs[0];
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["finished"], false);
    assert_eq!(job["processes"], 2, "{job}");
    let root = supervisor.lock().unwrap().job(&id).unwrap().root();
    assert_eq!(job["root"]["pid"], root.pid().as_raw());
    assert!(
        job["members"]
            .as_array()
            .unwrap()
            .contains(&Value::from(root.pid().as_raw())),
        "{job}"
    );
    // Both members are marked with the job and how each was found.
    let (status, body) = get_at("/api/marks", state);
    assert_eq!(status, StatusCode::OK, "{body}");
    let marks = body["marks"].as_array().expect("marks");
    assert_eq!(marks.len(), 2, "{body}");
    for mark in marks {
        assert_eq!(mark["job"], id.as_str(), "{mark}");
        assert!(
            mark["found_by"]
                .as_array()
                .unwrap()
                .contains(&Value::from("tag")),
            "{mark}"
        );
    }
    assert!(
        marks
            .iter()
            .any(|m| m["pid"] == root.pid().as_raw()
                && m["start_time"] == root.start_time().as_raw())
    );
    let report = supervisor
        .lock()
        .unwrap()
        .stop(&id, Duration::ZERO)
        .unwrap();
    assert!(report.is_complete(), "{report}");
}

/// Every `/api/*` route needs the token or a session: without either (or
/// with a wrong one) 401 with a JSON body that says what to send; the page
/// itself loads without.
#[tokio::test(flavor = "multi_thread")]
async fn every_api_route_needs_the_token_or_a_session() {
    let pid = std::process::id();
    for uri in [
        "/api/processes".to_owned(),
        format!("/api/processes?root={}", std::process::id()).to_owned(),
        format!("/api/processes/{pid}"),
        "/api/ports/22".to_owned(),
        "/api/jobs".to_owned(),
        "/api/marks".to_owned(),
        "/api/events".to_owned(),
    ] {
        assert_error(
            Call::get(&uri).without("authorization").send().await,
            StatusCode::UNAUTHORIZED,
            "no_token",
        );
        assert_error(
            Call::get(&uri)
                .header("authorization", "Bearer 0123456789abcdef0123456789abcdeX")
                .send()
                .await,
            StatusCode::UNAUTHORIZED,
            "bad_token",
        );
        assert_error(
            Call::get(&uri)
                .without("authorization")
                .header(
                    "cookie",
                    "proctrack_session_8787=0123456789abcdef0123456789abcdef",
                )
                .send()
                .await,
            StatusCode::UNAUTHORIZED,
            "bad_session",
        );
    }
    for page in ["/", "/app.js", "/style.css"] {
        let response = router(state())
            .oneshot(Call::get(page).without("authorization").request())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{page}");
    }
}

/// The page trades the link's one-time code for an HttpOnly, SameSite=Strict
/// cookie that reads and kills accept; the code works once; the token is
/// traded the same way.
#[tokio::test(flavor = "multi_thread")]
async fn the_sign_in_code_works_once_for_a_session_cookie() {
    let state = state();
    let code = state.sign_in_code().unwrap();
    let sign_in = |body: String| Call {
        method: "POST",
        uri: "/api/session".into(),
        headers: vec![
            ("host", BOUND.into()),
            ("content-type", "application/json".into()),
            ("origin", format!("http://{BOUND}")),
        ],
        body,
    };
    let response = router(state.clone())
        .oneshot(sign_in(format!(r#"{{"code": "{code}"}}"#)).request())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_owned();
    assert!(session.starts_with("proctrack_session_8787="), "{session}");

    let (status, body) = Call::get(format!("/api/processes?root={}", std::process::id()))
        .without("authorization")
        .header("cookie", format!("theme=dark; {session}"))
        .send_to(&state)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Another server (another state) does not know the session.
    assert_error(
        Call::get(format!("/api/processes?root={}", std::process::id()))
            .without("authorization")
            .header("cookie", session.clone())
            .send()
            .await,
        StatusCode::UNAUTHORIZED,
        "bad_session",
    );

    // Spent.
    assert_error(
        sign_in(format!(r#"{{"code": "{code}"}}"#))
            .send_to(&state)
            .await,
        StatusCode::UNAUTHORIZED,
        "bad_code",
    );
    // The token, in its header, signs in too; nothing at all does not.
    let response = router(state.clone())
        .oneshot(
            sign_in("{}".into())
                .header("authorization", format!("Bearer {SECRET}"))
                .request(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_error(
        sign_in("{}".into()).send_to(&state).await,
        StatusCode::UNAUTHORIZED,
        "no_token",
    );
    assert_error(
        sign_in("{\"code\": 1}".into()).send_to(&state).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    // A page of another origin cannot sign in.
    assert_error(
        sign_in("{}".into())
            .header("authorization", format!("Bearer {SECRET}"))
            .header("origin", "http://evil.example")
            .send_to(&state)
            .await,
        StatusCode::FORBIDDEN,
        "foreign_origin",
    );
}

/// Every answer, the page's and the API's, errors too, carries the
/// security headers; the API's are never cached; a browser request made
/// by another site is refused on every route.
#[tokio::test(flavor = "multi_thread")]
async fn every_answer_has_the_security_headers() {
    for (call, want) in [
        (Call::get("/"), StatusCode::OK),
        (Call::get("/app.js"), StatusCode::OK),
        (
            Call::get(format!("/api/processes?root={}", std::process::id())),
            StatusCode::OK,
        ),
        (Call::get("/api/nothing"), StatusCode::NOT_FOUND),
        (
            Call::get("/api/processes").without("authorization"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Call::get("/").header("host", "evil.example"),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let api = call.uri.starts_with("/api/");
        let uri = call.uri.clone();
        let response = router(state()).oneshot(call.request()).await.unwrap();
        assert_eq!(response.status(), want, "{uri}");
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{uri}: {csp}");
        }
        assert_eq!(headers["x-frame-options"], "DENY", "{uri}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{uri}");
        if api {
            assert_eq!(headers["cache-control"], "no-store", "{uri}");
        }
    }
    for uri in [
        "/",
        "/app.js",
        "/api/processes",
        "/api/session",
        "/api/processes/1/kill",
    ] {
        let method = if uri.ends_with("kill") || uri.ends_with("session") {
            "POST"
        } else {
            "GET"
        };
        let mut call = Call::get(uri).header("sec-fetch-site", "cross-site");
        call.method = method;
        assert_error(call.send().await, StatusCode::FORBIDDEN, "foreign_site");
    }
    // The page's own requests, and one typed in the address bar, pass.
    for site in ["same-origin", "none"] {
        let (status, body) = Call::get(format!("/api/processes?root={}", std::process::id()))
            .header("sec-fetch-site", site)
            .send()
            .await;
        assert_eq!(status, StatusCode::OK, "{site}: {body}");
    }
}

/// A kill with a signal that does not end a process (`SIGSTOP` would leave
/// the tree stopped for good) is 400, and the tree keeps running.
#[tokio::test(flavor = "multi_thread")]
async fn only_signals_that_end_a_process_are_sent() {
    let (mut tree, members) = spawn_tree();
    let root = tree.root();
    for signal in [
        "SIGSTOP", "SIGTSTP", "SIGCONT", "SIGUSR1", "SIGWINCH", "SIGABRT",
    ] {
        let body = format!(
            r#"{{"start_time": {}, "signal": "{signal}"}}"#,
            root.start_time().as_raw()
        );
        assert_error(
            Call::kill(root.pid(), body).send().await,
            StatusCode::BAD_REQUEST,
            "signal_not_allowed",
        );
    }
    assert_alive(&mut tree, &members);
    let table = ProcessTable::new().unwrap();
    for member in &members {
        let state = table.get(member.pid()).unwrap().state();
        assert!(!state.is_halted(), "{member}: {state:?}");
    }
    support::assert_no_leftovers(&tree.finish());
}

/// `ApiConfig::kill_scope`: a tree outside the scope is 403 `out_of_scope`
/// and nothing is signalled; inside, the kill goes through.
#[tokio::test(flavor = "multi_thread")]
async fn kills_stay_inside_the_configured_scope() {
    use proctrack::http::KillScope;

    let (mut tree, members) = spawn_tree();
    let root = tree.root();
    let me = ProcessTable::new()
        .unwrap()
        .get(Pid::current())
        .unwrap()
        .identity();
    let scoped = |scope: KillScope| {
        let bound: SocketAddr = BOUND.parse().unwrap();
        ApiState::new(ApiConfig::new(bound, Token::new(SECRET).unwrap()).kill_scope(scope)).unwrap()
    };
    let my_uid = rustix::process::geteuid().as_raw();
    let other_uid = if my_uid == 65534 { 65533 } else { 65534 };
    // A sibling's subtree (the tree's first reader), another uid, and no
    // supervisor: each leaves the root's tree outside.
    for scope in [
        KillScope::Subtrees(vec![members[1]]),
        KillScope::Uids(vec![other_uid]),
        KillScope::SupervisorJobs,
    ] {
        let (status, body) = Call::kill(root.pid(), body_for(root))
            .send_to(&scoped(scope.clone()))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{scope:?}: {body}");
        assert_eq!(body["error"], "out_of_scope", "{body}");
    }
    assert_alive(&mut tree, &members);

    // Inside: our own subtree (the test process is an ancestor), our uid.
    let (status, report) = Call::kill(members[1].pid(), body_for(members[1]))
        .send_to(&scoped(KillScope::Subtrees(vec![me])))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    support::wait_for_exit(members[1].pid());
    let (status, report) = Call::kill(root.pid(), body_for(root))
        .send_to(&scoped(KillScope::Uids(vec![my_uid])))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    for member in &members {
        support::wait_for_exit(member.pid());
    }
    support::assert_no_leftovers(&tree.finish());
}

/// `serve` closes a connection whose request head does not come (header
/// timeout) and one on which nothing moves (idle timeout), and answers
/// others meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn silent_and_idle_connections_are_closed() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bound = listener.local_addr().unwrap();
    let config = ApiConfig::new(bound, Token::new(SECRET).unwrap())
        .header_timeout(Duration::from_millis(200))
        .idle_timeout(Duration::from_millis(300));
    let server = tokio::spawn(proctrack::http::serve(
        listener,
        ApiState::new(config).unwrap(),
    ));
    // Waits (within the hang guard) for the server to close `stream`.
    async fn closed(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
        let mut answer = Vec::new();
        tokio::time::timeout(support::HANG_GUARD, stream.read_to_end(&mut answer))
            .await
            .expect("the server kept the connection open")
            .unwrap();
        answer
    }
    // Nothing sent: closed.
    let mut silent = tokio::net::TcpStream::connect(bound).await.unwrap();
    // Half a head, never finished: closed.
    let mut partial = tokio::net::TcpStream::connect(bound).await.unwrap();
    partial
        .write_all(b"GET / HTTP/1.1\r\nHost: ")
        .await
        .unwrap();
    // A whole request, then the connection kept alive and left: closed
    // after its answer.
    let mut kept = tokio::net::TcpStream::connect(bound).await.unwrap();
    kept.write_all(format!("GET / HTTP/1.1\r\nHost: {bound}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    for stream in [&mut silent, &mut partial] {
        let answer = closed(stream).await;
        assert!(!answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    }
    let answer = closed(&mut kept).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(!server.is_finished());
    server.abort();
}

/// Listings come from the event tracker's table: a tree started after the
/// tracker runs is listed once its events came in, and no longer once it
/// ended.
#[tokio::test(flavor = "multi_thread")]
async fn listings_follow_the_events() {
    let state = state();
    // The first read starts the tracker and waits for it.
    let (status, body) = Call::get(format!("/api/processes/{}", std::process::id()))
        .send_to(&state)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (tree, _) = spawn_tree();
    let root = tree.root().pid();
    let until = async |want: &dyn Fn(StatusCode, &Value) -> bool| {
        let deadline = std::time::Instant::now() + support::HANG_GUARD;
        loop {
            let (status, body) = Call::get(format!("/api/processes?root={root}"))
                .send_to(&state)
                .await;
            if want(status, &body) {
                return body;
            }
            assert!(std::time::Instant::now() < deadline, "{status}: {body}");
            tokio::task::yield_now().await;
        }
    };
    let listed = until(&|status, body| status == StatusCode::OK && body["count"] == 3).await;
    assert_eq!(listed["trees"][0]["children"].as_array().unwrap().len(), 2);
    support::assert_no_leftovers(&tree.finish());
    until(&|status, _| status == StatusCode::NOT_FOUND).await;
}
