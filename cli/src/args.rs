//! The command line, as clap sees it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use proctrack::Pid;

const EXIT_CODES: &str = "\
Exit codes:
  0  everything asked for was done
  1  partly done: a target was missing, refused (pid 1, proctrack itself or
     one of its ancestors, a kernel thread), denied or survived, a --cwd
     directory does not exist, nothing listens on a --port / port, or
     reading processes failed (`ports`: other users' processes that could
     not be read are a warning, not 1)
  2  usage error: an unknown option or a value that is not valid";

/// Know which processes a tool started, what those started, and stop them
/// safely.
#[derive(Debug, Parser)]
#[command(name = "proctrack", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Print whole command lines instead of cutting them to the terminal's width.
    #[arg(short, long, global = true)]
    pub wide: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show processes as a tree: the whole system, one process's tree, or the
    /// trees of every process standing in a directory.
    ///
    /// Members of the jobs of `proctrack run` (see `proctrack jobs`) end in
    /// `[job <id>: <how found>]`: cgroup, tag, tree.
    #[command(after_help = EXIT_CODES)]
    Tree(TreeArgs),
    /// List processes, one per line.
    #[command(after_help = EXIT_CODES)]
    Ps(PsArgs),
    /// Kill process trees: each PID with everything under it, or every
    /// process standing in a directory with its tree.
    ///
    /// Each tree is frozen (SIGSTOP) and rescanned until complete, so
    /// children forked during the kill are caught; then it gets SIGTERM,
    /// and SIGKILL for whatever is left after the grace period. pid 1,
    /// proctrack itself, its ancestors and kernel threads are never signalled.
    #[command(after_help = EXIT_CODES)]
    Kill(KillArgs),
    /// Print processes as they start, run a new program and exit (with the
    /// exit code or signal, also of processes that are not proctrack's
    /// children), from the kernel's process events as they happen.
    #[command(after_help = EXIT_CODES)]
    Watch(WatchArgs),
    /// Show who holds a port: every process that has the listening TCP or
    /// bound UDP socket open (IPv4 and IPv6), with its command, working
    /// directory and tree.
    #[command(after_help = EXIT_CODES)]
    Port(PortArgs),
    /// Show every listening TCP and bound UDP socket on the machine (IPv4
    /// and IPv6), each with every process that holds it: its working
    /// directory, command and tree. Like `ss -ltnup`, with trees.
    ///
    /// Other users' processes cannot be read without root: a socket they
    /// hold is listed without holders, with a warning that says so. That
    /// is not an error (exit 0): what could be read was shown.
    #[command(after_help = EXIT_CODES)]
    Ports(PortsArgs),
    /// Run a command as a contained job, and leave nothing of it behind.
    ///
    /// The command gets its own process group, proctrack becomes a child
    /// subreaper (orphans of the job reparent to it), every process of the
    /// job inherits PROCTRACK_JOB=<job id>, and, where the cgroup v2 tree is
    /// writable (root, or a delegated subtree), the job runs in a cgroup of
    /// its own. When the command exits, whatever it left running (daemons
    /// that double-forked and called setsid included) gets SIGTERM, then
    /// SIGKILL after the grace period. Ctrl-C (SIGINT), SIGTERM and SIGHUP
    /// stop the whole job the same way.
    ///
    /// The job is not in the terminal's foreground process group: a command
    /// that reads the terminal is stopped (SIGTTIN). Pipe its input instead.
    ///
    /// The job is written down in the state directory (see `proctrack
    /// jobs`), so that if this proctrack dies without stopping it (SIGKILL,
    /// OOM kill, a closed terminal), `proctrack jobs` lists it as orphaned
    /// and `proctrack stop` ends it. Before it starts the command, `run`
    /// stops whatever runs of the same --name that died left running, and
    /// says so on standard error.
    #[command(after_help = RUN_EXIT_CODES)]
    Run(RunArgs),
    /// List the jobs of `proctrack run`: live ones and orphaned ones (their
    /// proctrack died: SIGKILL, OOM kill, closed terminal), with their
    /// processes.
    ///
    /// Jobs are read from the state directory that `run` writes one file per
    /// job to: $PROCTRACK_STATE_DIR, else /run/proctrack for root, else
    /// $XDG_STATE_HOME/proctrack, else ~/.local/state/proctrack. A job's
    /// processes are found by its cgroup, its PROCTRACK_JOB tag and its
    /// tree. A file there that is not a readable job is named on standard
    /// error (exit 1) and left alone.
    #[command(after_help = EXIT_CODES)]
    Jobs(JobsArgs),
    /// Stop jobs of `proctrack run` by id (see `proctrack jobs`), or every
    /// orphaned one: every process of the job (found by cgroup, tag and
    /// tree) is frozen and killed with SIGKILL, its cgroup removed and its
    /// file in the state directory deleted.
    ///
    /// A job whose proctrack is still running is refused unless --force:
    /// that proctrack owns the job (and its cgroup) and stops it itself on
    /// Ctrl-C, with its grace period, reporting the command's status. With
    /// --force that proctrack is sent SIGTERM, as Ctrl-C would, and does
    /// so (it exits 143); if it has not exited after 60 s it is killed and
    /// its job stopped from here. Either way, whatever is left of the job is
    /// then stopped and reported. Exit 1 when anything is not proven gone,
    /// a cgroup is left, or a named job was not stopped.
    #[command(after_help = EXIT_CODES)]
    Stop(StopArgs),
    /// Serve the HTTP API and a live tree view in the browser (needs the
    /// `serve` feature: `cargo install --path cli --features serve`).
    ///
    /// Prints its address on stdout; on stderr, once, a link that signs the
    /// page in (it works once) and the API token that every /api route
    /// needs. Refuses to run as root without --allow-root.
    Serve(ServeArgs),
}

const RUN_EXIT_CODES: &str = "\
Exit codes:
  N        the command's exit code
  128+S    the command was killed by signal S, or proctrack was stopped by
           signal S (130 for Ctrl-C) and stopped the job
  125      proctrack could not start the job (it says why), or has no
           state directory to write it down in (set PROCTRACK_STATE_DIR)
  2        usage error";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Seconds between SIGTERM and SIGKILL when the job is stopped.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    pub grace: Duration,
    /// Run without a cgroup even where one could be made (process group,
    /// subreaper and tag only).
    #[arg(long)]
    pub no_cgroup: bool,
    /// The supervisor name in the job's id (and tag): ASCII letters,
    /// digits, '-' and '_'. What dead runs of this name left is stopped
    /// first.
    #[arg(long, default_value = "proctrack-run")]
    pub name: String,
    /// Take over what dead runs of this name left instead of stopping it:
    /// their jobs become this run's, and are stopped when it ends. COMMAND
    /// may then be left out: the run lasts until the jobs it took over end,
    /// or a signal (Ctrl-C) stops them.
    #[arg(long)]
    pub adopt: bool,
    /// The command and its arguments (after `--`).
    #[arg(
        required_unless_present = "adopt",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Also list each job's processes, with how each was found (cgroup,
    /// tag, tree).
    #[arg(long)]
    pub members: bool,
    /// Print JSON: the state directory and every job with its members.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).multiple(true).args(["jobs", "orphaned"]))]
pub struct StopArgs {
    /// The ids of the jobs to stop (`proctrack jobs` lists them).
    #[arg(value_name = "JOB")]
    pub jobs: Vec<String>,
    /// Stop every job whose proctrack is gone.
    #[arg(long)]
    pub orphaned: bool,
    /// Also stop a named job whose proctrack is still running, by sending
    /// that proctrack SIGTERM.
    #[arg(long)]
    pub force: bool,
    /// Print JSON: what happened to each job's processes.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The port to listen on (0: any free one).
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// The address to listen on. Anything but loopback lets other machines
    /// list your processes.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Also accept requests for this host (as the browser sends it:
    /// `name:port`), besides the bound address and the loopback names.
    /// Repeatable.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
    /// Serve even when run as root. A root server's token and page can
    /// kill any process on the system and read every process's details:
    /// run it as your own user unless you mean that.
    #[arg(long)]
    pub allow_root: bool,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    /// The port.
    pub port: u16,
    /// Only TCP sockets.
    #[arg(long, conflicts_with = "udp")]
    pub tcp: bool,
    /// Only UDP sockets.
    #[arg(long)]
    pub udp: bool,
    /// Read every process's open files, not only until each socket has a
    /// holder and the holders' families are read: also finds a process that
    /// was handed the socket by an unrelated one.
    #[arg(long)]
    pub all: bool,
    /// Print JSON: the sockets with their holders, and each holder's tree.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PortsArgs {
    /// Only TCP sockets.
    #[arg(long, conflicts_with = "udp")]
    pub tcp: bool,
    /// Only UDP sockets.
    #[arg(long)]
    pub udp: bool,
    /// Print JSON: the sockets with their holders, the processes that could
    /// not be read, and each holder's tree.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TreeArgs {
    /// The process whose tree to show (default: every process).
    #[arg(value_parser = parse_pid, allow_negative_numbers = true, conflicts_with = "cwd")]
    pub pid: Option<Pid>,
    /// Show the trees of the processes whose working directory is DIR or below it.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Print JSON: an array of trees, each `{"process": ..., "children": [...]}`;
    /// a member of a `proctrack run` job also has `"job": {"job": <id>,
    /// "found_by": [...]}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Only processes whose working directory is DIR or below it.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Only processes with this name (the kernel's `comm`, as `ps -o comm` shows it).
    #[arg(long)]
    pub name: Option<String>,
    /// Print JSON: an array of processes.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["pids", "cwd", "port"]))]
pub struct KillArgs {
    /// The roots of the trees to kill.
    #[arg(value_name = "PID", value_parser = parse_pid, allow_negative_numbers = true)]
    pub pids: Vec<Pid>,
    /// Kill every process whose working directory is DIR or below it (a
    /// removed directory matches by the path it had), each with its tree.
    #[arg(long, value_name = "DIR", conflicts_with = "pids")]
    pub cwd: Option<PathBuf>,
    /// Kill what holds PORT (TCP or UDP): for each holder, the tree under
    /// its highest ancestor that holds the port too (a server and its
    /// workers), never only the leaf.
    #[arg(long, value_name = "PORT", conflicts_with_all = ["pids", "cwd"])]
    pub port: Option<u16>,
    /// Seconds between SIGTERM and SIGKILL; 0 sends SIGKILL at once.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    pub grace: Duration,
    /// Show what would be killed, and signal nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON: the plan (with --dry-run) or what happened to each process.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Follow only this process and everything under it (nothing else is
    /// read); stop when it exits.
    #[arg(long, value_name = "PID", value_parser = parse_pid, allow_negative_numbers = true)]
    pub pid: Option<Pid>,
    /// Seconds between two refreshes where the kernel's process events are
    /// not available (the events then come from polling, without exit codes).
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_seconds)]
    pub interval: Duration,
    /// Stop after this many events (default: until interrupted).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Print one JSON object per event, one per line.
    #[arg(long)]
    pub json: bool,
}

/// A pid, or a message that says why the text is none.
fn parse_pid(text: &str) -> Result<Pid, String> {
    let digits = text.trim().strip_prefix('-').unwrap_or(text.trim());
    let value: i128 = match text.trim().parse() {
        Ok(value) => value,
        Err(_) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(format!(
                "{text} is not a valid pid: pids go from 1 to {}",
                i32::MAX
            ));
        }
        Err(_) => {
            return Err(format!(
                "{text} is not a pid: a pid is a whole number from 1 to {}",
                i32::MAX
            ));
        }
    };
    match value {
        0 => Err("0 is not a valid pid: pids start at 1 (kill(2) would read 0 as \"my own process group\")".into()),
        -1 => Err("-1 is not a valid pid: pids start at 1 (kill(2) would read -1 as \"every process I may signal\")".into()),
        value if value < 0 => Err(format!(
            "{value} is not a valid pid: pids start at 1 (kill(2) would read {value} as process group {})",
            -value
        )),
        value => Pid::try_from(i64::try_from(value).unwrap_or(i64::MAX))
            .map_err(|_| format!("{value} is not a valid pid: pids go up to {}", i32::MAX)),
    }
}

/// A number of seconds, whole or not, zero or more.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text} is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{text} is not a number of seconds from 0 up"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_say_why_they_are_not() {
        assert!(parse_pid("0").unwrap_err().contains("pids start at 1"));
        assert!(parse_pid("-1").unwrap_err().contains("every process"));
        assert!(parse_pid("-7").unwrap_err().contains("process group 7"));
        assert!(parse_pid("abc").unwrap_err().contains("not a pid"));
        assert!(
            parse_pid("2147483648")
                .unwrap_err()
                .contains("up to 2147483647")
        );
        assert!(parse_pid("99999999999999999999999999999999999999999").is_err());
        assert_eq!(parse_pid("2147483647").map(Pid::as_raw), Ok(i32::MAX));
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("inf").is_err());
    }

    #[test]
    fn clap_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
