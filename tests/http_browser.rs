//! The tree view in a real browser: headless Chromium driven through its
//! WebDriver (`chromedriver`, Debian package `chromium-driver`; `.ci/run`
//! installs it). The page shows a tree the test spawned, the filter narrows
//! the list, the kill button kills the tree (seen through pidfds), and a
//! process spawned afterwards appears within a second.
#![cfg(target_os = "linux")]

mod support;

#[path = "../benches/population/mod.rs"]
mod population;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use proctrack::http::{ApiConfig, ApiState, Token, serve};
use proctrack::signal::ProcessHandle;
use proctrack::{Pid, ProcessIdentity};
use serde_json::{Value, json};
use support::{HANG_GUARD, Lines, SpawnedTree};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const SECRET: &str = "browser-test-token-0123456789abcdef";
/// Where the screenshot of the filtered page goes: cargo's scratch folder
/// for integration tests, inside the target dir on any machine.
const SCREENSHOT: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/http-screenshot.png");

/// chromedriver on a free loopback port; killed and reaped on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists(),
            "{CHROMEDRIVER} is missing: apt-get install chromium chromium-driver (as .ci/test does)"
        );
        // A port the kernel just had free; chromedriver binds it at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // The guard first: a hang below still ends chromedriver.
        let mut driver = Driver { child, port };
        let mut lines = Lines::new(driver.child.stdout.take().unwrap());
        loop {
            match lines.next_line() {
                Some(line) if line.contains("started successfully") => break,
                Some(_) => continue,
                None => panic!("chromedriver exited before it was ready"),
            }
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1280,800",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

/// Runs `script` in the page until it returns true, or fails after `limit`.
async fn until(client: &Client, script: &str, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    loop {
        let value = client.execute(script, vec![]).await.unwrap();
        if value == Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        // The page's own work (its refresh) is what we wait for: yield to
        // the server's tasks between looks.
        tokio::task::yield_now().await;
    }
}

async fn shown_rows(client: &Client) -> u64 {
    let value = client
        .execute(
            "return document.querySelectorAll('#rows .row').length",
            vec![],
        )
        .await
        .unwrap();
    value.as_u64().unwrap()
}

fn row_of(pid: Pid) -> String {
    format!("return document.querySelector('#rows .row[data-pid=\"{pid}\"]') !== null")
}

/// Three processes whose command lines hold `marker`: a root and two `read`ers.
fn spawn_tree(marker: &str) -> (SpawnedTree, Vec<ProcessIdentity>) {
    let mut tree = SpawnedTree::shell(&format!(
        "exec 3<&0; sh -c 'echo $$; read _' {marker} <&3 & sh -c 'echo $$; read _' {marker} <&3 & echo ready; wait"
    ));
    let lines = tree.read_lines(3);
    assert!(lines.iter().any(|l| l == "ready"), "{lines:?}");
    let members: Vec<ProcessIdentity> = tree.members().iter().map(|p| p.identity()).collect();
    assert_eq!(members.len(), 3);
    (tree, members)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_view_lists_filters_kills_and_follows() {
    // Dropped last: sweeps whatever Chromium left behind.
    let _serial = support::serial();
    let profile = tempfile::Builder::new()
        .prefix("http-chromium-")
        .tempdir()
        .unwrap();
    let driver = Driver::start();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bound: SocketAddr = listener.local_addr().unwrap();
    let state = ApiState::new(ApiConfig::new(bound, Token::new(SECRET).unwrap())).unwrap();
    let code = state.sign_in_code().unwrap();
    let server = tokio::spawn(serve(listener, state));

    let marker = format!("http-browser-{}", std::process::id());
    let (tree, members) = spawn_tree(&marker);

    let client = browser(&driver, profile.path()).await;
    client
        .goto(&format!("http://{bound}/#code={code}"))
        .await
        .unwrap();
    until(
        &client,
        "return /processes/.test(document.getElementById('status').textContent)",
        HANG_GUARD,
        "the first listing",
    )
    .await;
    // Signed in by the link's one-time code: out of the address bar, and
    // the session cookie is out of the scripts' reach (HttpOnly).
    let signed_in = client
        .execute(
            "return [location.hash, document.cookie.includes('proctrack_session'), \
             document.getElementById('signin').hidden]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(signed_in, json!(["", false, true]));
    let total = shown_rows(&client).await;
    // Live updates come from the event stream.
    until(
        &client,
        "return document.getElementById('mode').textContent === 'live'",
        HANG_GUARD,
        "the event stream",
    )
    .await;

    // The filter narrows the list to the tree (and its ancestors).
    client
        .find(Locator::Id("filter"))
        .await
        .unwrap()
        .send_keys(&marker)
        .await
        .unwrap();
    for member in &members {
        until(&client, &row_of(member.pid()), HANG_GUARD, "a member's row").await;
    }
    let narrowed = shown_rows(&client).await;
    assert!(
        narrowed >= 3 && narrowed < total.max(4),
        "{narrowed} of {total} rows"
    );
    let status = client
        .find(Locator::Id("status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    eprintln!("filtered: {status}");
    let png = client.screenshot().await.unwrap();
    std::fs::write(SCREENSHOT, png).unwrap();
    eprintln!("screenshot: {SCREENSHOT}");

    // Kill the tree from its root's row, confirmed.
    let handles: Vec<ProcessHandle> = members
        .iter()
        .map(|m| ProcessHandle::open(*m).unwrap())
        .collect();
    let root = members[0].pid();
    // Found and clicked in one script: the page updates its rows in place,
    // so an element found in one call may show another process in the next.
    client
        .execute(
            &format!("document.querySelector('#rows .row[data-pid=\"{root}\"] .kill').click()"),
            vec![],
        )
        .await
        .unwrap();
    let question = client
        .find(Locator::Id("confirm-text"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        question.starts_with(&format!("Kill process {root} ")),
        "{question}"
    );
    client
        .find(Locator::Id("confirm-kill"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let waits = tokio::task::spawn_blocking(move || {
        handles
            .iter()
            .map(|h| h.wait_timeout(HANG_GUARD).unwrap())
            .collect::<Vec<bool>>()
    });
    assert_eq!(
        waits.await.unwrap(),
        [true, true, true],
        "every member exited"
    );
    until(
        &client,
        "return /^killed 3,/.test(document.getElementById('message').textContent)",
        HANG_GUARD,
        "the kill's report",
    )
    .await;

    // A new process shows up without a reload (how fast is the bench's
    // business: a loaded machine must not fail this).
    let (later, later_members) = spawn_tree(&marker);
    until(
        &client,
        &row_of(later_members[0].pid()),
        HANG_GUARD,
        "the new tree's row",
    )
    .await;

    client.close().await.unwrap();
    server.abort();
    support::assert_no_leftovers(&tree.finish());
    support::assert_no_leftovers(&later.finish());
}

/// The tree view marks the members of the jobs written down in the state
/// directory it was given (what `proctrack serve` shows of `proctrack run`'s
/// jobs): which job, and how each member was found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_view_marks_job_members() {
    use proctrack::supervisor::{Cgroups, StateDir, Supervisor, SupervisorOptions};

    let _serial = support::serial();
    let profile = tempfile::Builder::new()
        .prefix("http-chromium-")
        .tempdir()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = StateDir::new(dir.path());
    // Dropped before the checks below end: it stops the job whatever happens.
    let mut supervisor = Supervisor::new(
        SupervisorOptions::new("browser")
            .cgroups(Cgroups::Off)
            .journal(state_dir.clone()),
    )
    .unwrap();
    // Both members carry the marker in their command lines, for the filter;
    // `read` blocks on the pipe we hold.
    let marker = format!("http-job-{}", std::process::id());
    let mut command = supervisor.command("sh");
    command
        .args([
            "-c",
            "exec 3<&0; sh -c 'read _' \"$0\" <&3 & echo ready; wait",
            &marker,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let id = supervisor.spawn(command).unwrap();
    let child = supervisor.child_mut(&id).unwrap();
    let _stdin = child.stdin.take().unwrap();
    let mut lines = Lines::new(child.stdout.take().unwrap());
    assert_eq!(lines.line(), "ready");
    let members = supervisor.members(&id).unwrap();
    assert_eq!(members.len(), 2, "sh and its child");

    let driver = Driver::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bound: SocketAddr = listener.local_addr().unwrap();
    let config = ApiConfig::new(bound, Token::new(SECRET).unwrap()).jobs_from(state_dir);
    let state = ApiState::new(config).unwrap();
    let code = state.sign_in_code().unwrap();
    let server = tokio::spawn(serve(listener, state));
    let client = browser(&driver, profile.path()).await;
    client
        .goto(&format!("http://{bound}/#code={code}"))
        .await
        .unwrap();
    // Narrowed to the job's rows (and their ancestors), so all are drawn.
    client
        .find(Locator::Id("filter"))
        .await
        .unwrap()
        .send_keys(&marker)
        .await
        .unwrap();
    for member in &members {
        let pid = member.process.pid();
        until(
            &client,
            &format!(
                "const r = document.querySelector('#rows .row[data-pid=\"{pid}\"] .job'); \
                 return r !== null && r.textContent.startsWith('job {id}: ') \
                 && r.textContent.includes('tag') && !r.hidden"
            ),
            HANG_GUARD,
            "a member's job mark",
        )
        .await;
    }
    // A process outside the job carries no mark: the test process, shown
    // as the job's ancestor.
    let me = std::process::id();
    let unmarked = client
        .execute(
            &format!(
                "const row = document.querySelector('#rows .row[data-pid=\"{me}\"]'); \
                 const r = row && row.querySelector('.job'); \
                 return row !== null && (r === null || r.hidden)"
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unmarked, Value::Bool(true));

    client.close().await.unwrap();
    server.abort();
    let report = supervisor.stop(&id, Duration::ZERO).unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(lines.next_line(), None);
}

/// The page with ~2000 extra processes: how long one refresh takes (fetch,
/// then flatten, filter and render), and that filtering finds a process.
/// Run once by hand: `cargo test --features http --test http_browser -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "spawns 2000 processes; run by hand"]
async fn tree_view_with_2000_processes() {
    let _serial = support::serial();
    let population = population::Population::spawn(4, 500).expect("the population");
    let profile = tempfile::Builder::new()
        .prefix("http-chromium-")
        .tempdir()
        .unwrap();
    let driver = Driver::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bound: SocketAddr = listener.local_addr().unwrap();
    let state = ApiState::new(ApiConfig::new(bound, Token::new(SECRET).unwrap())).unwrap();
    let code = state.sign_in_code().unwrap();
    let server = tokio::spawn(serve(listener, state));
    let client = browser(&driver, profile.path()).await;
    client
        .goto(&format!("http://{bound}/#code={code}"))
        .await
        .unwrap();
    until(
        &client,
        "return document.body.dataset.renderMs !== undefined",
        HANG_GUARD,
        "a listing",
    )
    .await;
    let mut samples = Vec::new();
    for _ in 0..10 {
        client
            .execute("delete document.body.dataset.renderMs; refresh()", vec![])
            .await
            .unwrap();
        until(
            &client,
            "return document.body.dataset.renderMs !== undefined",
            HANG_GUARD,
            "a refresh",
        )
        .await;
        let timing = client
            .execute(
                "return [document.body.dataset.fetchMs, document.body.dataset.renderMs]",
                vec![],
            )
            .await
            .unwrap();
        samples.push(timing);
    }
    let status = client
        .find(Locator::Id("status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let last = population.pids()[1999];
    client
        .find(Locator::Id("filter"))
        .await
        .unwrap()
        .send_keys(&last.to_string())
        .await
        .unwrap();
    until(
        &client,
        &format!(
            "return document.querySelector('#rows .row[data-pid=\"{}\"]') !== null",
            last.as_raw_nonzero()
        ),
        HANG_GUARD,
        "the filtered row",
    )
    .await;
    eprintln!("{status}; refreshes [fetch ms, flatten+filter+render ms]: {samples:?}");
    client.close().await.unwrap();
    server.abort();
    population.teardown().unwrap();
}
