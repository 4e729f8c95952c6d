//! The async supervisor in a tokio application: one job adopted after a
//! crash, one spawned, their events streamed, both stopped from an axum
//! handler.
//!
//! 1. A first supervisor, a child process of this example (the example run
//!    again with `SUPERVISE_ASYNC_CRASHER` set), starts a job and is
//!    killed with SIGKILL: a crash that leaves its job running.
//! 2. This process's [`AsyncSupervisor`] adopts that job, and spawns one
//!    of its own; every job event is printed as it comes.
//! 3. An axum route, `POST /jobs/stop`, stops every job; the example calls
//!    it itself over local HTTP, prints the reports, waits until the
//!    stream told both ends, and exits 0.
//!
//! Runs by itself, with no arguments: `cargo run --example
//! supervise_async --features http`. Everything it starts is stopped
//! when it ends, also on an error or a hang (the crasher is killed on
//! drop; the supervisor's shutdown stops its jobs, and a recover the
//! crashed supervisor's job if it was not adopted).

use std::error::Error;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use proctrack::supervisor::{AsyncSupervisor, JobEvent, JobId, Supervisor, SupervisorOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Set (to the supervisor's name) in the crashing first supervisor.
const CRASHER: &str = "SUPERVISE_ASYNC_CRASHER";
/// Each job: a background sleeper, a line when it runs, then the root
/// sleeps.
const JOB: &str = "sleep 600 & echo ready; exec sleep 600";
/// How long anything may take before the example gives up.
const GUARD: Duration = Duration::from_secs(60);

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// The first supervisor: starts a job, says its id once it runs, and waits
/// to be killed.
fn crasher(name: &str) -> Result<()> {
    use std::io::BufRead;
    let mut supervisor = Supervisor::new(SupervisorOptions::new(name))?;
    let mut command = supervisor.command("sh");
    command.args(["-c", JOB]).stdout(Stdio::piped());
    let id = supervisor.spawn(command)?;
    let stdout = supervisor
        .child_mut(&id)
        .and_then(|child| child.stdout.take())
        .ok_or("no stdout")?;
    let mut ready = String::new();
    std::io::BufReader::new(stdout).read_line(&mut ready)?;
    println!("job {id}");
    loop {
        std::thread::park();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    if let Ok(name) = std::env::var(CRASHER) {
        // The child: blocking code that never returns; nothing else runs
        // on this runtime.
        return crasher(&name);
    }
    let name = format!("example-{}", std::process::id());
    let supervisor = Arc::new(AsyncSupervisor::new(SupervisorOptions::new(&name)).await?);
    println!("events from: {}", supervisor.probe());
    let outcome = tokio::time::timeout(GUARD, demo(&supervisor, &name)).await;
    // Whatever happened: stop what is left, ours and, if the example
    // failed before adopting it, the crashed supervisor's job.
    let left = supervisor.shutdown(Duration::from_secs(2)).await?;
    for report in left {
        println!("stopped at shutdown: {report}");
    }
    let recovered = supervisor.with_supervisor(Supervisor::recover).await??;
    for job in recovered.jobs {
        println!("recovered {}: {}", job.id, job.kill.counts());
    }
    outcome??;
    Ok(())
}

async fn demo(supervisor: &Arc<AsyncSupervisor>, name: &str) -> Result<()> {
    let mut events = supervisor.events();
    let printer = tokio::spawn(async move {
        let mut ended = 0;
        while let Some(event) = events.next().await {
            println!("event: {event}");
            if matches!(event, JobEvent::Exited { .. }) {
                ended += 1;
                if ended == 2 {
                    break;
                }
            }
        }
    });

    // 1. The crash.
    let mut first = tokio::process::Command::new(std::env::current_exe()?)
        .env(CRASHER, name)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(first.stdout.take().ok_or("no stdout")?).lines();
    let line = lines
        .next_line()
        .await?
        .ok_or("the first supervisor said nothing")?;
    let crashed: JobId = line.strip_prefix("job ").ok_or("not a job line")?.parse()?;
    let pid = first.id().ok_or("no pid")?;
    first.start_kill()?; // SIGKILL
    let status = first.wait().await?;
    println!("first supervisor (pid {pid}) crashed: {status}");

    // 2. Adopt its job; spawn one of ours.
    let adoptable = supervisor.adoptable().await?;
    let adoptable: Vec<String> = adoptable.iter().map(ToString::to_string).collect();
    println!("adoptable: {}", adoptable.join(", "));
    supervisor.adopt(&crashed).await?;
    let adopted = supervisor.job(&crashed).await?.ok_or("adopted")?;
    println!(
        "adopted {crashed}: root {}, {} members, {}",
        adopted.root.pid(),
        adopted.members.len(),
        adopted.containment
    );
    let mut command = supervisor.command("sh").await?;
    command.args(["-c", JOB]).stdout(Stdio::piped());
    let ours = supervisor.spawn(command).await?;
    let id = ours.clone();
    let stdout = supervisor
        .with_supervisor(move |s| s.child_mut(&id).and_then(|c| c.stdout.take()))
        .await?
        .ok_or("no stdout")?;
    let mut ready = BufReader::new(tokio::process::ChildStdout::from_std(stdout)?).lines();
    ready.next_line().await?;
    let usage = supervisor.usage(&ours).await?;
    println!("spawned {ours}: {} processes", usage.processes);

    // 3. Stop both through the HTTP API, called over local HTTP.
    let app = Router::new()
        .route("/jobs/stop", post(stop_all))
        .with_state(supervisor.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(
            format!(
                "POST /jobs/stop HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    server.abort();
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no HTTP response")?;
    println!("POST /jobs/stop -> {}", head.lines().next().unwrap_or(""));
    print!("{body}");
    printer.await?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("the stop failed: {head}").into());
    }
    Ok(())
}

/// `POST /jobs/stop`: stops every running job, two seconds of grace each,
/// and says how each went.
async fn stop_all(
    State(supervisor): State<Arc<AsyncSupervisor>>,
) -> std::result::Result<String, (axum::http::StatusCode, String)> {
    let failed = |error: proctrack::supervisor::SupervisorError| {
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            error.to_string(),
        )
    };
    let mut out = String::new();
    for job in supervisor.status().await.map_err(failed)? {
        if job.finished {
            continue;
        }
        let report = supervisor
            .stop(&job.id, Duration::from_secs(2))
            .await
            .map_err(failed)?;
        let exit = report
            .exit
            .map_or_else(|| "unknown".to_owned(), |status| status.to_string());
        out.push_str(&format!("{report}root exit: {exit}\n"));
    }
    Ok(out)
}
