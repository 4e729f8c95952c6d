//! `proctrack serve`: the library's HTTP API and tree view on a socket.

use crate::args::ServeArgs;
use crate::output::Out;
use crate::{Error, Outcome};

#[cfg(feature = "serve")]
pub fn run(args: &ServeArgs, out: &mut Out) -> Result<Outcome, Error> {
    use proctrack::http::{ApiConfig, ApiState, Token, serve};

    // Timers too: axum's SSE keep-alive and its accept loop's back-off on
    // EMFILE sleep, and a runtime without them panics there.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.bind, args.port)).await?;
        let bound = listener.local_addr()?;
        let token = Token::generate()?;
        if !bound.ip().is_loopback() {
            crate::output::error(&format!(
                "listening on {bound}: other machines can list your processes"
            ));
        }
        let config = args
            .allow_hosts
            .iter()
            .fold(ApiConfig::new(bound, token.clone()), |config, host| {
                config.allow_host(host)
            });
        let state = ApiState::new(config)?;
        // Printed once, in one write: the token is the key to the kill
        // route. A reader that went away after the first line (`| head -1`)
        // does not take the server down with it.
        let banner = out
            .plain(&format!("proctrack serves http://{bound}/#token={token}"))
            .and_then(|()| out.plain(&format!("API token (Authorization: Bearer ...): {token}")))
            .map_err(Error::Output)
            .and_then(|()| out.flush());
        if let Err(error) = banner {
            crate::output::warn(&format!("{error}; serving anyway"));
        }
        serve(listener, state).await?;
        Ok(Outcome::Done)
    })
}

#[cfg(not(feature = "serve"))]
pub fn run(_: &ServeArgs, _: &mut Out) -> Result<Outcome, Error> {
    Err(Error::Library(proctrack::Error::Unsupported {
        what: "this proctrack was built without `serve`: cargo install --path cli --features serve",
    }))
}
