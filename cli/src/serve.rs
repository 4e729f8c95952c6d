//! `proctrack serve`: the library's HTTP API and tree view on a socket.

use crate::args::ServeArgs;
use crate::{Error, Outcome};

#[cfg(feature = "serve")]
pub fn run(args: &ServeArgs) -> Result<Outcome, Error> {
    use proctrack::http::{ApiConfig, ApiState, Token, serve};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_io()
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
        // Printed once: the token is the key to the kill route.
        println!("proctrack serves http://{bound}/#token={token}");
        println!("API token (Authorization: Bearer ...): {token}");
        serve(listener, state).await?;
        Ok(Outcome::Done)
    })
}

#[cfg(not(feature = "serve"))]
pub fn run(_: &ServeArgs) -> Result<Outcome, Error> {
    Err(Error::Library(proctrack::Error::Unsupported {
        what: "this proctrack was built without `serve`: cargo install --path cli --features serve",
    }))
}
