//! `proctrack`: list, watch and safely kill process trees.
//!
//! The command is thin: every question it asks goes to the `proctrack`
//! library; this crate parses arguments and formats answers.

mod args;
mod jobs;
mod kill;
mod list;
mod output;
mod port;
mod ports;
mod run;
mod serve;
mod stop;
mod watch;

use std::io;
use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};
use output::Out;

/// How a run ended; the numbers are the exit codes documented in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Everything asked for was done.
    Done,
    /// Some of it was not: a target was missing, refused, denied or
    /// survived, or a read failed.
    Partial,
    /// `run`: the command's own exit code, or ours for how it ended.
    Exit(u8),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = Out::stdout(cli.wide);
    let result = match &cli.command {
        Command::Tree(tree) => list::tree(tree, &mut out),
        Command::Ps(ps) => list::ps(ps, &mut out),
        Command::Kill(kill) => match kill.port {
            Some(port) => port::kill(kill, port, &mut out),
            None => kill::run(kill, &mut out),
        },
        Command::Port(port) => port::show(port, &mut out),
        Command::Ports(ports) => ports::show(ports, &mut out),
        Command::Watch(watch) => watch::run(watch, &mut out),
        Command::Run(run) => Ok(run::run(run)),
        Command::Jobs(jobs) => jobs::run(jobs, &mut out),
        Command::Stop(stop) => stop::run(stop, &mut out),
        Command::Serve(serve) => serve::run(serve, &mut out),
    };
    let result = result.and_then(|outcome| out.flush().map(|()| outcome));
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Partial) => ExitCode::from(1),
        Ok(Outcome::Exit(code)) => ExitCode::from(code),
        Err(error) if is_closed_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            output::error(&error);
            ExitCode::from(1)
        }
    }
}

/// The reader of our output went away (`proctrack tree | head -1`): nobody is
/// left to tell, and stopping early is what they asked for.
fn is_closed_pipe(error: &Error) -> bool {
    matches!(error, Error::Output(io) if io.kind() == io::ErrorKind::BrokenPipe)
}

/// Why a command could not finish.
#[derive(Debug)]
enum Error {
    /// Writing our output failed.
    Output(io::Error),
    /// The library failed (reading `/proc`, say).
    Library(proctrack::Error),
    /// JSON could not be written.
    Json(serde_json::Error),
    /// The state directory could not be chosen or read.
    State(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Output(error) => write!(f, "cannot write output: {error}"),
            Error::Library(error) => write!(f, "{error}"),
            Error::Json(error) => write!(f, "cannot write JSON: {error}"),
            Error::State(error) => write!(f, "{error}"),
        }
    }
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Error {
        Error::Output(error)
    }
}

impl From<proctrack::Error> for Error {
    fn from(error: proctrack::Error) -> Error {
        Error::Library(error)
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Error {
        // serde_json wraps the writer's errors: a closed pipe stays one.
        if error.is_io() {
            return Error::Output(io::Error::from(error));
        }
        Error::Json(error)
    }
}
