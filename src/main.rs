//! The `switchboard` binary: parse arguments, load `providers.toml`, serve until a signal.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use switchboard::config::{self, Snapshot};
use switchboard::server::Server;

const USAGE: &str = "usage: switchboard [--config PATH] [--listen ADDR] [--check]

  --config PATH   configuration file (default: providers.toml)
  --listen ADDR   address to listen on, overriding [server] listen
  --check         validate the file, print a summary of providers, routes and keys, and exit
";

/// What the command line asked for.
struct Args {
    config: PathBuf,
    listen: Option<SocketAddr>,
    check: bool,
}

fn parse_args() -> Result<Option<Args>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args {
        config: PathBuf::from("providers.toml"),
        listen: None,
        check: false,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") | Short('c') => args.config = parser.value()?.into(),
            Long("listen") | Short('l') => args.listen = Some(parser.value()?.parse()?),
            Long("check") => args.check = true,
            Long("help") | Short('h') => return Ok(None),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            let _ = std::io::stdout().write_all(USAGE.as_bytes());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "switchboard: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let snapshot = match config::load(&args.config, &config::process_env) {
        Ok(snapshot) => snapshot,
        Err(errors) => {
            let _ = writeln!(std::io::stderr(), "{errors}");
            return ExitCode::FAILURE;
        }
    };
    if args.check {
        let _ = std::io::stdout().write_all(snapshot.summary().as_bytes());
        return ExitCode::SUCCESS;
    }
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(snapshot, args.listen))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn serve(snapshot: Snapshot, listen: Option<SocketAddr>) -> ExitCode {
    for line in snapshot.summary().lines() {
        tracing::info!("{line}");
    }
    if snapshot.keys.is_empty() {
        tracing::warn!("no [[keys]] configured: any client can use this router");
    }
    let listen = listen.unwrap_or(snapshot.server.listen);
    let server = match Server::bind(snapshot, listen).await {
        Ok(server) => server,
        Err(e) => {
            tracing::error!(%listen, error = %e, "cannot start (listener or usage log)");
            return ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr().map_or(listen, |a| a);
    tracing::info!("switchboard listening on http://{addr} (OpenAI base URL http://{addr}/v1)");
    server.run(shutdown_signal()).await;
    ExitCode::SUCCESS
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => tracing::info!("SIGINT received"),
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
