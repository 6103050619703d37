//! The `s3gate` command: serve, check, presign, demo.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use s3gate::config::{Config, ServerConfig};
use s3gate::front::{server, App};
use s3gate::presign::{self, PresignOptions};

#[derive(Debug, Parser)]
#[command(version, about = "A local, S3-compatible presigning gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    },
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
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
        Command::Check { config } => {
            let loaded = load(&config).await?;
            println!(
                "{}: ok ({} integrations)",
                config.display(),
                loaded.app.registry().integrations().len()
            );
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("S3GATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Everything `serve` needs, built from the config file.
struct Loaded {
    server: ServerConfig,
    app: App,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Loads the config, builds the app and the TLS acceptor, so that `check`
/// catches what `serve` would; contacts no upstream.
async fn load(path: &std::path::Path) -> Result<Loaded, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let server = config.server.clone();
    let app = App::new(config).await.map_err(|e| e.to_string())?;
    let tls = server
        .tls
        .as_ref()
        .map(server::tls_acceptor)
        .transpose()
        .map_err(|e| format!("[server.tls]: {e}"))?;
    Ok(Loaded { server, app, tls })
}

async fn serve(
    Loaded {
        server: config,
        app,
        tls,
    }: Loaded,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("listening on {scheme}://{addr}");
    let grace = Duration::from_secs(config.shutdown_grace_s);
    server::serve(
        listener,
        Arc::new(app),
        tls,
        server::shutdown_signal(),
        grace,
    )
    .await
    .map_err(|e| e.to_string())
}

async fn presign_one(app: App, locator: &str, expires: Option<u64>) -> Result<(), String> {
    let options = PresignOptions {
        expires_s: expires,
        ..Default::default()
    };
    let presigned = presign::presign(app.registry(), locator, &options)
        .await
        .map_err(|e| e.to_string())?;
    println!("{}", presigned.url);
    Ok(())
}
