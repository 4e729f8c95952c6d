//! The registry, end to end: a supervisor starts a dev server, registers it,
//! and crashes without cleaning up; on the next start the registry tells
//! what was left running, and a stop kills it, freeing the server's port.
//!
//! ```text
//! cargo run --example registry_story --features registry
//! ```
//!
//! Everything runs from this one binary, re-executed in three roles (chosen
//! by an environment variable), so nothing outside is needed:
//!
//! - the **narrator** (no role): tells the story, owns the registry file in
//!   a temporary directory, and is a child subreaper, so that the processes
//!   the crashed supervisor leaves behind become its children instead of
//!   pid 1's, and it can reap them;
//! - the **supervisor**: opens the registry, registers itself, starts the
//!   dev server (`sh -c '"$0" & wait'`: a shell with a listener child),
//!   registers both, and exits without stopping them: a crash;
//! - the **listener**: a TCP listener on 127.0.0.1 (a port the kernel
//!   picks), the stand-in for a dev server.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use proctrack::Pid;
use proctrack::registry::{Metadata, Registry, owner_key, process_owner_alive};
use proctrack::signal::{KillOptions, Subreaper, spawn_group};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const ROLE: &str = "PROCTRACK_STORY_ROLE";
const DB: &str = "PROCTRACK_STORY_DB";

fn main() -> Result<()> {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    match std::env::var(ROLE).as_deref() {
        Ok("listener") => listener(),
        Ok("supervisor") => runtime()?.block_on(supervisor()),
        _ => runtime()?.block_on(narrator()),
    }
}

/// The dev server: listens, says where, and accepts until it is killed.
fn listener() -> Result<()> {
    let socket = TcpListener::bind("127.0.0.1:0")?;
    let port = socket.local_addr()?.port();
    println!("listening {port} {}", std::process::id());
    std::io::stdout().flush()?;
    for connection in socket.incoming() {
        drop(connection);
    }
    Ok(())
}

/// The supervisor: registers what it starts, then "crashes".
async fn supervisor() -> Result<()> {
    let path = std::env::var(DB)?;
    let registry = Registry::open(&path).await?;
    let me = proctrack::process(Pid::current())?;
    // Rows are owned by this supervisor's identity: whoever reads the file
    // later can tell whether the owner still runs.
    let owner = owner_key(me.identity());
    registry
        .register(
            me.identity(),
            &Metadata::from_process(owner.clone(), &me).label("supervisor"),
        )
        .await?;

    let exe = std::env::current_exe()?;
    let mut command = Command::new("sh");
    command
        .args(["-c", "\"$0\" & wait"])
        .arg(&exe)
        .env(ROLE, "listener")
        .stdout(Stdio::piped());
    let mut server = spawn_group(&mut command)?;
    let stdout = server.child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let mut words = line.split_whitespace().skip(1);
    let port: u16 = words.next().ok_or("no port")?.parse()?;
    let listener_pid = Pid::try_from(words.next().ok_or("no pid")?.parse::<i32>()?)?;
    // The listener is alive (it waits for connections), so this reads it.
    let listener = proctrack::process(listener_pid)?;

    let shell_id = registry
        .register(
            server.handle.identity(),
            &Metadata::new(owner.clone()).label("dev server").command([
                "sh",
                "-c",
                "\"$0\" & wait",
            ]),
        )
        .await?;
    let listener_id = registry
        .register(
            listener.identity(),
            &Metadata::new(owner.clone()).label(format!("listener on port {port}")),
        )
        .await?;
    println!("port {port}");
    println!(
        "registered #{shell_id} (the dev server's shell, {}) and #{listener_id} (its listener, {})",
        server.handle.identity(),
        listener.identity()
    );
    println!("crashing now, leaving both running");
    // A crash: no cleanup, no destructors, children left behind.
    std::process::exit(17);
}

/// The narrator: tells the story, and cleans up whatever happens.
async fn narrator() -> Result<()> {
    let subreaper = Subreaper::install()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("processes.db");
    let result = story(&subreaper, &path).await;
    // Whatever went wrong above, leave nothing behind.
    let mut table = proctrack::table::ProcessTable::new()?;
    let leftovers = subreaper.kill_adopted(&mut table, &KillOptions::new())?;
    if !leftovers.killed.is_empty() {
        println!(
            "cleanup killed {} leftover processes",
            leftovers.killed.len()
        );
    }
    for (orphan, status) in subreaper.reap_adopted(&mut table)? {
        println!("cleanup reaped {orphan}: {status}");
    }
    result
}

async fn story(subreaper: &Subreaper, path: &Path) -> Result<()> {
    println!("== 1. A supervisor starts a dev server, registers it, and crashes");
    let mut command = Command::new(std::env::current_exe()?);
    command
        .env(ROLE, "supervisor")
        .env(DB, path)
        .stdout(Stdio::piped());
    let mut supervisor = subreaper.spawn(&mut command)?;
    let stdout = supervisor.child.stdout.take().ok_or("no stdout")?;
    let mut port = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("   supervisor: {line}");
        if let Some(number) = line.strip_prefix("port ") {
            port = Some(number.parse::<u16>()?);
        }
    }
    let status = supervisor.child.wait()?;
    println!("   the supervisor is gone ({status})");
    let port = port.ok_or("the supervisor did not report a port")?;
    TcpStream::connect(("127.0.0.1", port))?;
    println!("   port {port} still answers: the dev server outlived its supervisor");

    println!("== 2. The supervisor starts again and opens the registry");
    let registry = Registry::open(path)
        .await?
        .with_kill_options(KillOptions::graceful(Duration::from_secs(3)));
    for entry in registry.running().await? {
        println!(
            "   running by the book: #{} {} {:?} `{}`",
            entry.id(),
            entry.identity(),
            entry.label(),
            entry.command()
        );
    }

    println!("== 3. Reconcile: check every row against the live system");
    let report = registry.reconcile().await?;
    for entry in report.ended() {
        println!(
            "   #{} {:?}: {} ({})",
            entry.id(),
            entry.label(),
            entry.status(),
            entry.end_reason().map(|r| r.as_str()).unwrap_or("?")
        );
    }
    for entry in &report.running {
        println!("   #{} {:?}: still running", entry.id(), entry.label());
    }

    println!("== 4. Stop what dead owners left behind");
    let stopped = registry
        .stop_stale(|owner| process_owner_alive(owner).unwrap_or(true))
        .await?;
    for line in stopped.to_string().lines() {
        println!("   {line}");
    }
    if !stopped.is_complete() {
        return Err("the stop left something running".into());
    }
    // The dev server's shell was adopted by us when the supervisor died; the
    // tree kill killed it, and its exit status is ours to collect.
    let mut table = proctrack::table::ProcessTable::new()?;
    for (orphan, status) in subreaper.reap_adopted(&mut table)? {
        println!("   collected the exit status of {orphan}: {status}");
    }

    println!("== 5. The aftermath");
    let entries = registry.by_owner(&stopped_owner(&stopped)?).await?;
    for entry in &entries {
        let still_there = matches!(
            proctrack::process(entry.pid()),
            Ok(now) if now.identity() == entry.identity()
        );
        println!(
            "   #{} {:?}: {}{}",
            entry.id(),
            entry.label(),
            entry.status(),
            if still_there { " (STILL THERE)" } else { "" }
        );
        if still_there {
            return Err(format!("{} is still there", entry.identity()).into());
        }
    }
    TcpListener::bind(("127.0.0.1", port))?;
    println!("   port {port} is free again");
    registry.close().await;
    Ok(())
}

/// The owner whose rows the stop killed (the crashed supervisor).
fn stopped_owner(report: &proctrack::registry::StopReport) -> Result<String> {
    let first = report.killed().next().ok_or("the stop killed nothing")?;
    Ok(first.owner().to_owned())
}
