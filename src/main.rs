//! The `s3gate` command: serve, check (and probe), presign, token,
//! external-id, policy, demo.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use s3gate::config::{Config, ServerConfig};
use s3gate::front::server::{self, Listener};
use s3gate::front::App;
use s3gate::logging;
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
    let _log = logging::init(format);
    let result = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the runtime: {e}"))
        .and_then(|rt| rt.block_on(run(cli.command)));
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
        Command::Serve { config } => serve(load(&config).await?).await,
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

async fn serve(loaded: Loaded) -> Result<(), String> {
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
    let listener = bind(config.listen).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("listening on {scheme}://{addr}");
    let app = Arc::new(app);
    let grace = Duration::from_secs(config.shutdown_grace_s);
    let metrics = match config.metrics_listen {
        Some(addr) => {
            let listener = bind(addr).await?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            tracing::info!("metrics listening on http://{addr}");
            let pending = std::future::pending::<()>();
            let serve = server::serve_as(
                Listener::Metrics,
                listener,
                app.clone(),
                None,
                pending,
                grace,
            );
            Some(tokio::spawn(serve))
        }
        None => None,
    };
    let served = server::serve(listener, app, tls, server::shutdown_signal(), grace).await;
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    served.map_err(|e| e.to_string())
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
