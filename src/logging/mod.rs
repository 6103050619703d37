//! Logging: `tracing` to stderr through a non-blocking writer, as text or
//! JSON lines. Request handling never waits for the log: lines go to a
//! bounded queue a background thread writes out, and a full queue drops
//! lines (counted, and exported as `s3gate_log_lines_dropped`) rather than
//! stall a request.

mod text;

use std::path::Path;
use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines the queue holds before it drops.
const QUEUE_LINES: usize = 64 * 1024;

/// Filter directives added unless `S3GATE_LOG` names the target: the
/// embedded store logs requests, `Authorization` headers included, at debug.
const QUIET_TARGETS: &[&str] = &["s3s=info", "s3s_fs=info"];

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Lines dropped so far because the writer fell behind.
pub fn dropped_lines() -> usize {
    DROPPED.get().map_or(0, ErrorCounter::dropped_lines)
}

/// `[log] format` of a config file, if it says; read before the config is
/// loaded, so that loading is logged in that format. Errors are left to the
/// load that follows.
pub fn format_in(config: &Path) -> Option<Format> {
    #[derive(serde::Deserialize)]
    struct Peek {
        log: Option<LogTable>,
    }
    #[derive(serde::Deserialize)]
    struct LogTable {
        format: Option<Format>,
    }
    let text = std::fs::read_to_string(config).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let peek: Peek = toml::Value::Table(table).try_into().ok()?;
    peek.log?.format
}

/// Bytes of log lines gathered into one write: the writer thread flushes
/// after each batch it drains from the queue, so under load one `write`
/// carries many lines instead of one each; a line is never split.
const WRITE_BUFFER: usize = 64 << 10;

/// Installs the subscriber with the `S3GATE_LOG` filter (default `info`).
/// Keep the guard: dropping it flushes the queue.
pub fn init(format: Format) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .finish(std::io::BufWriter::with_capacity(
            WRITE_BUFFER,
            std::io::stderr(),
        ));
    let _ = DROPPED.set(writer.error_counter());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(writer);
    match format {
        Format::Text if std::io::IsTerminal::is_terminal(&std::io::stderr()) => {
            builder.with_ansi(true).init();
        }
        Format::Text => builder.event_format(text::Text).init(),
        Format::Json => builder.json().flatten_event(true).init(),
    }
    guard
}

fn filter() -> EnvFilter {
    let spec = std::env::var("S3GATE_LOG").unwrap_or_else(|_| "info".into());
    let mut filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    for quiet in QUIET_TARGETS {
        let target = quiet.split('=').next().unwrap_or_default();
        let named = spec
            .split(',')
            .any(|d| d.trim().split('=').next() == Some(target));
        if let (false, Ok(directive)) = (named, quiet.parse()) {
            filter = filter.add_directive(directive);
        }
    }
    filter
}
