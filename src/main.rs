//! The `switchboard` binary: parse arguments, load `providers.toml`, serve until a signal,
//! reloading the file when it changes or on SIGHUP.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use switchboard::config::reload::{self, ReloadHandle, Source, Trigger};
use switchboard::config::{self, Snapshot, view};
use switchboard::logging::{self, LogFormat};
use switchboard::server::Server;
use switchboard::workers;

/// mimalloc instead of glibc's malloc: every request allocates and frees small buffers on
/// several threads, where glibc's malloc showed up at several percent of the router's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: switchboard [--config PATH] [--listen ADDR] [--log-format FORMAT]
                   [--check [--against URL [--key KEY]]]

  --config PATH   configuration file (default: providers.toml)
  --listen ADDR   address to listen on, overriding [server] listen
  --log-format F  text or json, overriding [server] log_format (default: text)
  --workers N     threads that serve connections (default: one per core)
  --check         validate the file, print a summary of providers, routes and keys, and exit
  --against URL   with --check: also print what the file would change in the router running
                  at URL (read from its GET /admin/config)
  --key KEY       the admin key for --against (default: $SWITCHBOARD_ADMIN_KEY)
";

/// The variable `--against` reads the admin key from when `--key` is not given.
const ADMIN_KEY_ENV: &str = "SWITCHBOARD_ADMIN_KEY";

/// What the command line asked for.
struct Args {
    config: PathBuf,
    listen: Option<SocketAddr>,
    log_format: Option<LogFormat>,
    workers: NonZeroUsize,
    check: bool,
    against: Option<String>,
    key: Option<String>,
}

fn parse_args() -> Result<Option<Args>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args {
        config: PathBuf::from("providers.toml"),
        listen: None,
        log_format: None,
        workers: workers::default_count(),
        check: false,
        against: None,
        key: None,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") | Short('c') => args.config = parser.value()?.into(),
            Long("listen") | Short('l') => args.listen = Some(parser.value()?.parse()?),
            Long("log-format") => args.log_format = Some(parser.value()?.parse()?),
            Long("workers") => args.workers = parser.value()?.parse()?,
            Long("check") => args.check = true,
            Long("against") => args.against = Some(parser.value()?.parse()?),
            Long("key") => args.key = Some(parser.value()?.parse()?),
            Long("help") | Short('h') => return Ok(None),
            _ => return Err(arg.unexpected()),
        }
    }
    if args.against.is_some() && !args.check {
        return Err("--against only works with --check".into());
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
        return match &args.against {
            Some(url) => compare(&snapshot, url, args.key.as_deref()),
            None => ExitCode::SUCCESS,
        };
    }
    init_tracing(args.log_format.unwrap_or(snapshot.server.log_format));
    // This thread accepts connections and runs the background tasks (reloads, the usage
    // log); the workers serve the connections.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(snapshot, args.config, args.listen, args.workers))
}

/// `--check --against URL`: prints what the file would change in the running router. The file
/// is valid by now, so the answer is 0 whatever the differences; 2 when the router could not
/// be asked (unreachable, wrong key), since then nothing was compared.
fn compare(snapshot: &Snapshot, url: &str, key: Option<&str>) -> ExitCode {
    let key = key
        .map(str::to_owned)
        .or_else(|| config::process_env(ADMIN_KEY_ENV));
    let fetched = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| {
            runtime
                .block_on(switchboard::admin_client::fetch_config(url, key.as_deref()))
                .map_err(|e| e.to_string())
        });
    match fetched {
        Ok(running) => {
            let report = format!("against {url}\n{}", view::compare(&running, snapshot));
            let _ = std::io::stdout().write_all(report.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "switchboard: the file is valid, but it could not be compared: {e}"
            );
            ExitCode::from(2)
        }
    }
}

/// The process log on stderr, filtered by `RUST_LOG` (default `info`), coloured only on a
/// terminal.
fn init_tracing(format: LogFormat) {
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let subscriber = logging::subscriber(format, filter, std::io::stderr, ansi);
    if let Err(e) = subscriber.try_init() {
        let _ = writeln!(std::io::stderr(), "switchboard: cannot set up logging: {e}");
    }
}

async fn serve(
    snapshot: Snapshot,
    path: PathBuf,
    listen: Option<SocketAddr>,
    workers: NonZeroUsize,
) -> ExitCode {
    for line in snapshot.summary().lines() {
        tracing::info!("{line}");
    }
    if snapshot.keys.is_empty() {
        tracing::warn!("no [[keys]] configured: any client can use this router");
    }
    let listen = listen.unwrap_or(snapshot.server.listen);
    let server = match Server::bind(snapshot, listen, workers).await {
        Ok(server) => server,
        Err(e) => {
            tracing::error!(%listen, error = %e, "cannot start (listener or usage log)");
            return ExitCode::FAILURE;
        }
    };
    let reload = reload::spawn(
        &server.state(),
        Source::new(path, Arc::new(config::process_env)),
    );
    // Before the "listening" line: from then on a SIGHUP must reload, not end the process.
    listen_for_hangup(reload);
    let addr = server.local_addr().map_or(listen, |a| a);
    tracing::info!(
        workers = workers.get(),
        "switchboard listening on http://{addr} (OpenAI base URL http://{addr}/v1)"
    );
    server.run(shutdown_signal()).await;
    ExitCode::SUCCESS
}

/// Reloads the configuration on every SIGHUP.
#[cfg(unix)]
fn listen_for_hangup(reload: ReloadHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => hangup,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload through the file or /admin/reload");
            return;
        }
    };
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP received");
            if !reload.trigger(Trigger::Signal) {
                tracing::info!("a reload is already queued; it will read the current file");
            }
        }
    });
}

/// No SIGHUP outside Unix: the file watch and /admin/reload remain.
#[cfg(not(unix))]
fn listen_for_hangup(_reload: ReloadHandle) {}

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
