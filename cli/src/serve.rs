//! `proctrack serve`: the library's HTTP API and tree view on a socket.

use crate::args::ServeArgs;
use crate::output::Out;
use crate::{Error, Outcome};

#[cfg(feature = "serve")]
pub fn run(args: &ServeArgs, out: &mut Out) -> Result<Outcome, Error> {
    use proctrack::http::{ApiConfig, ApiState, Token, raise_fd_limit, serve};

    // Timers too: axum's SSE keep-alive and its accept loop's back-off on
    // EMFILE sleep, and a runtime without them panics there.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if rustix::process::geteuid().is_root() && !args.allow_root {
        crate::output::error(&ROOT_REFUSED);
        return Ok(Outcome::Partial);
    }
    // Room for many connections: the server bounds them by this limit.
    if let Err(error) = raise_fd_limit() {
        crate::output::warn(&format!("cannot raise the open-file limit: {error}"));
    }
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.bind, args.port)).await?;
        let bound = listener.local_addr()?;
        let token = Token::generate()?;
        if !bound.ip().is_loopback() {
            crate::output::error(&format!(
                "listening on {bound}: other machines can list your processes"
            ));
        }
        let mut config = args
            .allow_hosts
            .iter()
            .fold(ApiConfig::new(bound, token.clone()), |config, host| {
                config.allow_host(host)
            });
        // The tree view marks the members of `proctrack run`'s jobs.
        if let Ok(state_dir) = proctrack::supervisor::StateDir::from_env() {
            config = config.jobs_from(state_dir);
        }
        let state = ApiState::new(config)?;
        let code = state.sign_in_code()?;
        // The address alone on stdout (logs may keep it). A reader that
        // went away (`| head -1`) does not take the server down with it.
        let banner = out
            .plain(&format!("proctrack serves http://{bound}/"))
            .map_err(Error::Output)
            .and_then(|()| out.flush());
        if let Err(error) = banner {
            crate::output::warn(&format!("{error}; serving anyway"));
        }
        // The secrets once, on stderr: a link whose code signs the page in
        // once (spent, it is harmless in a browser's argv), and the token
        // for scripts, never in a URL.
        eprintln!(
            "proctrack: sign the page in (this link works once): http://{bound}/#code={code}"
        );
        eprintln!("proctrack: API token for scripts (Authorization: Bearer <token>): {token}");
        serve(listener, state).await?;
        Ok(Outcome::Done)
    })
}

/// Why `serve` does not run as root unless told to.
#[cfg(feature = "serve")]
const ROOT_REFUSED: &str = "proctrack serve is running as root: its token and page could kill \
any process on this system and read every process's details. Run it as your own user; \
pass --allow-root if you mean to serve as root (it exits now)";

#[cfg(not(feature = "serve"))]
pub fn run(_: &ServeArgs, _: &mut Out) -> Result<Outcome, Error> {
    Err(Error::Library(proctrack::Error::Unsupported {
        what: "this proctrack was built without `serve`: cargo install --path cli --features serve",
    }))
}
