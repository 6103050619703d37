//! The `s3gate` command: serve, check (and probe), presign, token,
//! external-id, policy, demo.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use s3gate::config::{Config, ServerConfig};
use s3gate::front::server::{self, Listener, Live};
use s3gate::front::App;
use s3gate::logging;
use s3gate::notify;
use s3gate::presign::{self, PresignOptions};
use s3gate::setup::policy::Documents;
use s3gate::setup::probe;

#[derive(Debug, Parser)]
#[command(version, about = "A local, S3-compatible presigning gateway")]
struct Cli {
    /// Log lines as `text` or `json` (default: `[log] format`, else text).
    #[arg(long, global = true, value_enum)]
    log_format: Option<logging::Format>,
    #[command(subcommand)]
    command: Command,
}

/// How `s3gate policy` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file; exits non-zero with the first error.
    Check {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Also try each integration: assume its role, list one key of each
        /// permitted bucket and prefix, HEAD it; exits non-zero on any FAIL.
        #[arg(long)]
        probe: bool,
    },
    /// Print a fresh random external ID (a UUID v4) for a customer's trust policy.
    ExternalId,
    /// Print what the customer applies for one integration: the IAM access and
    /// trust policies, the bucket CORS rule, and for a custom endpoint the
    /// MinIO policy and `mc` commands.
    Policy {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The integration's name.
        name: String,
        /// `text` (documents with headings saying where each goes) or `json` (one object).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print a fresh random bearer token and the `token_sha256` line that admits it.
    Token,
    /// Print one presigned URL.
    Presign {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Locator, e.g. s3://bucket/key.
        locator: String,
        /// Lifetime in seconds (default: the integration's presign_ttl_s).
        #[arg(long)]
        expires: Option<u64>,
    },
    /// Run an embedded S3 store with sample images and the gateway in front of it.
    #[cfg(feature = "embedded-store")]
    Demo(s3gate::demo::DemoArgs),
}

impl Command {
    /// The config file the command reads, if any.
    fn config(&self) -> Option<&std::path::Path> {
        match self {
            Command::Serve { config }
            | Command::Check { config, .. }
            | Command::Policy { config, .. }
            | Command::Presign { config, .. } => Some(config),
            _ => None,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli
        .log_format
        .or_else(|| cli.command.config().and_then(logging::format_in))
        .unwrap_or_default();
    let log = logging::init(format);
    let result = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the runtime: {e}"))
        .and_then(|rt| rt.block_on(run(cli.command)));
    // Every log line is out before the command's last word.
    drop(log);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            #[allow(clippy::print_stderr)] // the one report of a failed command
            {
                eprintln!("s3gate: {message}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve { config } => serve(&config, load(&config).await?).await,
        Command::Check { config, probe } => {
            let loaded = load(&config).await?;
            println!(
                "{}: ok ({} integrations, {} clients)",
                config.display(),
                loaded.app.registry().integrations().len(),
                loaded.clients,
            );
            for warning in &loaded.warnings {
                println!("warning: {warning}");
            }
            if probe {
                probe_all(&loaded).await?;
            }
            Ok(())
        }
        Command::ExternalId => {
            println!("{}", s3gate::setup::external_id());
            Ok(())
        }
        Command::Policy {
            config,
            name,
            format,
        } => {
            let config = Config::load(&config).map_err(|e| e.to_string())?;
            let docs = Documents::build(&config, &name).map_err(|e| e.to_string())?;
            match format {
                Format::Text => print!("{}", docs.to_text()),
                Format::Json => println!("{:#}", docs.to_json()),
            }
            Ok(())
        }
        Command::Token => {
            let (token, line) = s3gate::auth::new_token().map_err(|e| e.to_string())?;
            println!("token: {token}\n{line}");
            Ok(())
        }
        Command::Presign {
            config,
            locator,
            expires,
        } => presign_one(load(&config).await?.app, &locator, expires).await,
        #[cfg(feature = "embedded-store")]
        Command::Demo(args) => s3gate::demo::run(args).await,
    }
}

/// Everything `serve` needs, built from the config file.
struct Loaded {
    server: ServerConfig,
    app: App,
    tls: Option<tokio_rustls::TlsAcceptor>,
    clients: usize,
    /// What the operator should know about this config.
    warnings: Vec<String>,
    /// What `check --probe` tries of each integration.
    plans: Vec<probe::Plan>,
}

/// Loads the config, builds the app and the TLS acceptor, so that `check`
/// catches what `serve` would; contacts no upstream.
async fn load(path: &std::path::Path) -> Result<Loaded, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let server = config.server.clone();
    let clients = config.clients.len();
    let warnings = warnings(&config);
    let plans = probe::plans(&config);
    let app = App::new(config).await.map_err(|e| e.to_string())?;
    let tls = server
        .tls
        .as_ref()
        .map(server::tls_acceptor)
        .transpose()
        .map_err(|e| format!("[server.tls]: {e}"))?;
    Ok(Loaded {
        server,
        app,
        tls,
        clients,
        warnings,
        plans,
    })
}

/// Probes every integration, prints one line each; fails if any failed.
async fn probe_all(loaded: &Loaded) -> Result<(), String> {
    let reports = probe::probe(loaded.app.registry(), &loaded.plans).await;
    for report in &reports {
        println!("{report}");
    }
    let failed = reports.iter().filter(|r| !r.ok()).count();
    if failed > 0 {
        return Err(format!(
            "{failed} of {} integrations failed the probe",
            reports.len()
        ));
    }
    Ok(())
}

/// Prefixes are string prefixes: `task-1` also admits `task-17/`. And a
/// client's bucket that none of its integrations serves admits nothing.
fn prefix_warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    let bare = |p: &&String| !p.ends_with('/');
    for integration in &config.integrations {
        for prefix in integration.prefixes.iter().filter(bare) {
            warnings.push(format!("integration {:?}: prefix {prefix:?} has no trailing `/`: it admits every key that starts with it, such as \"{prefix}x/…\"", integration.name));
        }
    }
    for client in &config.clients {
        for prefix in client.prefixes.iter().filter(bare) {
            warnings.push(format!("client {:?}: prefix {prefix:?} has no trailing `/`: it admits every key that starts with it, such as \"{prefix}x/…\"", client.name));
        }
        for bucket in &client.buckets {
            let served = config.integrations.iter().any(|i| {
                client
                    .integrations
                    .as_ref()
                    .is_none_or(|names| names.contains(&i.name))
                    && i.serves_bucket(bucket)
            });
            if !served {
                warnings.push(format!(
                    "client {:?}: bucket {bucket:?} is served by none of its integrations",
                    client.name
                ));
            }
        }
    }
    warnings
}

/// What `check` prints and `serve` logs as warnings.
fn warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    if config.clients.is_empty() && !config.listens_on_loopback_only() {
        warnings.push(format!("[server] allow_anonymous = true: the JSON API on {} is open to anyone who reaches it, with every integration", config.server.listen));
    }
    if !config.clients.is_empty() && config.s3_api.anonymous {
        warnings.push("[s3_api] anonymous = true: the S3 front serves every integration to unsigned requests, whatever the [[clients]] may read".into());
    }
    warnings.extend(prefix_warnings(config));
    if config.url_signing_keys.is_empty() {
        warnings.push("no [server] url_signing_keys_env or url_signing_keys_file: gateway-signed URLs and grants use a random key made at start, die with the process and are not valid on other replicas".into());
    }
    warnings
}

async fn serve(path: &std::path::Path, loaded: Loaded) -> Result<(), String> {
    let Loaded {
        server: config,
        app,
        tls,
        warnings,
        ..
    } = loaded;
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    // Before any listener is bound: a SIGHUP from then on reloads, never kills.
    let hangups = hangups()?;
    let listener = bind(config.listen).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("listening on {scheme}://{addr}");
    let live = Live::new(Arc::new(app), tls);
    let grace = Duration::from_secs(config.shutdown_grace_s);
    let metrics = match config.metrics_listen {
        Some(addr) => {
            let listener = bind(addr).await?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            tracing::info!("metrics listening on http://{addr}");
            let pending = std::future::pending::<()>();
            let serve =
                server::serve_live(Listener::Metrics, listener, live.clone(), pending, grace);
            Some(tokio::spawn(serve))
        }
        None => None,
    };
    let reloads = tokio::spawn(reload_on(hangups, path.to_owned(), live.clone(), config));
    notify::notify(notify::READY);
    let shutdown = async {
        server::shutdown_signal().await;
        notify::notify(notify::STOPPING);
    };
    let served = server::serve_live(Listener::Main, listener, live.clone(), shutdown, grace).await;
    reloads.abort();
    if let Some(cache) = live.app().cache() {
        // What the disk tier buffered is written, so it serves after a restart.
        cache.close().await;
    }
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    served.map_err(|e| e.to_string())
}

#[cfg(unix)]
type Hangups = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangups = ();

/// The stream of SIGHUPs, each a reload.
fn hangups() -> Result<Hangups, String> {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| format!("cannot handle SIGHUP: {e}"))
    }
    #[cfg(not(unix))]
    Ok(())
}

/// Reloads the config file at each SIGHUP, as systemd's `ExecReload` sends.
#[cfg_attr(not(unix), allow(unused_variables))]
async fn reload_on(mut hangups: Hangups, path: PathBuf, live: Arc<Live>, started: ServerConfig) {
    #[cfg(unix)]
    while hangups.recv().await.is_some() {
        notify::notify(notify::RELOADING);
        tracing::info!("SIGHUP received: reloading {}", path.display());
        match reload(&path, &live, &started).await {
            Ok(()) => {
                tracing::info!("reloaded {}", path.display());
                notify::notify(notify::READY);
            }
            Err(e) => {
                tracing::error!("reload failed, still serving the previous config: {e}");
                notify::notify(&format!("{}\nSTATUS=reload failed: {e}", notify::READY));
            }
        }
    }
}

/// Re-reads and validates the config, then installs the gateway it builds
/// and a fresh TLS acceptor (certificate and key re-read) for new requests.
/// On any error nothing changes. Settings that only a restart applies are
/// logged and stay as `started` has them.
async fn reload(path: &std::path::Path, live: &Live, started: &ServerConfig) -> Result<(), String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let fixed = restart_needed(started, &config.server);
    let tls = match (&started.tls, &config.server.tls) {
        (Some(_), Some(tls)) => {
            Some(server::tls_acceptor(tls).map_err(|e| format!("[server.tls]: {e}"))?)
        }
        _ => live.tls().map(|acceptor| (*acceptor).clone()),
    };
    let warnings = warnings(&config);
    let app = App::reload(config, &live.app())
        .await
        .map_err(|e| e.to_string())?;
    for setting in fixed {
        tracing::warn!(
            "[server] {setting} changed: it takes effect on a restart; the running value stays"
        );
    }
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    live.install(Arc::new(app), tls);
    Ok(())
}

/// The `[server]` settings that differ and that only a restart applies: the
/// listeners, TLS on or off, and the connection limits of the accept loop.
fn restart_needed(started: &ServerConfig, new: &ServerConfig) -> Vec<&'static str> {
    let changed = [
        ("listen", started.listen != new.listen),
        (
            "metrics_listen",
            started.metrics_listen != new.metrics_listen,
        ),
        ("tls", started.tls.is_some() != new.tls.is_some()),
        (
            "shutdown_grace_s",
            started.shutdown_grace_s != new.shutdown_grace_s,
        ),
        (
            "max_connections",
            started.max_connections != new.max_connections,
        ),
        (
            "handshake_timeout_s",
            started.handshake_timeout_s != new.handshake_timeout_s,
        ),
        (
            "keepalive_timeout_s",
            started.keepalive_timeout_s != new.keepalive_timeout_s,
        ),
        (
            "http2_keepalive_interval_s",
            started.http2_keepalive_interval_s != new.http2_keepalive_interval_s,
        ),
        (
            "http2_keepalive_timeout_s",
            started.http2_keepalive_timeout_s != new.http2_keepalive_timeout_s,
        ),
        (
            "http2_idle_timeout_s",
            started.http2_idle_timeout_s != new.http2_idle_timeout_s,
        ),
        ("h2c", started.h2c != new.h2c),
        (
            "send_timeout_s",
            started.send_timeout_s != new.send_timeout_s,
        ),
    ];
    changed
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect()
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

async fn presign_one(app: App, locator: &str, expires: Option<u64>) -> Result<(), String> {
    let options = PresignOptions {
        expires_s: expires,
        ..Default::default()
    };
    let resolved = app
        .registry()
        .resolve_object(locator)
        .map_err(|e| e.to_string())?;
    let presigned = presign::presign(&resolved, &options)
        .await
        .map_err(|e| e.to_string())?;
    println!("{}", presigned.url);
    Ok(())
}
