//! Logging: `tracing` to stderr through a non-blocking writer, as text or
//! JSON lines. Request handling never waits for the log: lines go to a
//! bounded batch a background thread writes out ([`writer`]), and a full
//! batch drops lines (counted, and exported as `s3gate_log_lines_dropped`)
//! rather than stall a request.

pub mod line;
mod text;
mod writer;

use std::path::Path;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

pub use writer::Flush;

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

static WRITER: OnceLock<writer::BatchWriter> = OnceLock::new();

/// Lines dropped so far: the writer fell behind, or stderr refused them.
pub fn dropped_lines() -> usize {
    WRITER.get().map_or(0, writer::BatchWriter::dropped)
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

/// Installs the subscriber with the `S3GATE_LOG` filter (default `info`).
/// Keep the guard: dropping it writes what is left.
pub fn init(format: Format) -> Flush {
    let (writer, guard) = writer::start(std::io::stderr());
    let _ = WRITER.set(writer.clone());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(writer.clone());
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if !(terminal && format == Format::Text) {
        line::enable(writer.clone(), format);
    }
    match format {
        Format::Text if terminal => builder.with_ansi(true).init(),
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

/// A writer tests read what the subscriber wrote from.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct TestBuffer(pub(crate) std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl std::io::Write for TestBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for TestBuffer {
    type Writer = TestBuffer;
    fn make_writer(&'a self) -> TestBuffer {
        self.clone()
    }
}
