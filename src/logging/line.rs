//! A log line written straight into the batch, in the format the
//! subscriber writes ([`super::text`] or its JSON), for the line every
//! request writes: the access line.
//!
//! Through `tracing` that line costs ≈ 7,000 instructions (the event's
//! dispatch, a visitor and `fmt` machinery per field); written here it costs
//! a fraction (≈ 9 % of a presign's instructions saved, callgrind). It goes
//! this way only when [`super::init`] set up the batch and the log is not a
//! terminal; otherwise (a terminal's colours, the tests' own subscriber) the
//! caller logs through `tracing` as usual.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::SystemTime;

use super::text::{write_timestamp, Escaped};
use super::writer::BatchWriter;
use super::Format;

/// Where direct lines go, and in which format; set once by [`super::init`].
static DIRECT: OnceLock<(BatchWriter, Format)> = OnceLock::new();

/// Lets lines be written directly to `writer` in `format`.
pub(super) fn enable(writer: BatchWriter, format: Format) {
    let _ = DIRECT.set((writer, format));
}

thread_local! {
    /// The line being built, reused by each line of this thread.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The fields of one line, written as `name=value` (text) or `"name":value`
/// (JSON).
#[derive(Debug)]
pub struct Fields<'a> {
    text: &'a mut String,
    json: bool,
}

impl Fields<'_> {
    /// A text field.
    pub fn str(&mut self, name: &str, value: &str) -> &mut Self {
        self.name(name);
        if self.json {
            crate::json::push_string(self.text, value);
        } else {
            let _ = Escaped(&mut *self.text).write_str(value);
        }
        self
    }

    /// A number field.
    pub fn u64(&mut self, name: &str, value: u64) -> &mut Self {
        self.name(name);
        crate::decimal::push(self.text, value);
        self
    }

    /// A boolean field.
    pub fn bool(&mut self, name: &str, value: bool) -> &mut Self {
        self.name(name);
        self.text.push_str(if value { "true" } else { "false" });
        self
    }

    fn name(&mut self, name: &str) {
        if self.json {
            self.text.push_str(",\"");
            self.text.push_str(name);
            self.text.push_str("\":");
        } else {
            self.text.push(' ');
            self.text.push_str(name);
            self.text.push('=');
        }
    }
}

/// Writes an INFO line of `target` with the fields `fields` writes, and
/// says so; `false` when lines cannot be written directly (log through
/// `tracing` then). The caller checks that `target` logs at INFO.
pub fn info(target: &str, fields: impl FnOnce(&mut Fields<'_>)) -> bool {
    let Some((writer, format)) = DIRECT.get() else {
        return false;
    };
    LINE.with_borrow_mut(|text| {
        build(
            text,
            *format == Format::Json,
            target,
            SystemTime::now(),
            fields,
        );
        let _ = writer.line(false).write_all(text.as_bytes());
    });
    true
}

/// The line into `text`, as the subscriber would write it at `time`.
fn build(
    text: &mut String,
    json: bool,
    target: &str,
    time: SystemTime,
    fields: impl FnOnce(&mut Fields<'_>),
) {
    text.clear();
    if json {
        text.push_str("{\"timestamp\":\"");
        let _ = write_timestamp(text, time);
        text.push_str("\",\"level\":\"INFO\"");
    } else {
        let _ = write_timestamp(text, time);
        text.push_str("  INFO ");
        text.push_str(target);
        text.push(':');
    }
    fields(&mut Fields { text, json });
    if json {
        text.push_str(",\"target\":");
        crate::json::push_string(text, target);
        text.push('}');
    }
    text.push('\n');
}

#[cfg(test)]
mod tests {
    use super::super::TestBuffer as Buffer;
    use super::*;

    /// The line `tracing` writes for the same event, timestamp cut off.
    fn through_tracing(json: bool, path: &str) -> String {
        let buffer = Buffer::default();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(buffer.clone());
        let event = || {
            tracing::info!(
                target: "s3gate::access",
                id = 7u64,
                zero = 0u64,
                max = u64::MAX,
                path = %path,
                complete = true
            );
        };
        if json {
            tracing::subscriber::with_default(builder.json().flatten_event(true).finish(), event);
        } else {
            tracing::subscriber::with_default(
                builder.event_format(super::super::text::Text).finish(),
                event,
            );
        }
        let line = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        cut_timestamp(&line)
    }

    fn cut_timestamp(line: &str) -> String {
        let at = line.find('Z').unwrap();
        line[at..].to_owned()
    }

    #[test]
    fn lines_read_as_the_subscriber_writes_them() {
        for json in [false, true] {
            for path in ["/v1/presign", "/a b/\"q\"\n\u{1b}[31m/é"] {
                let mut text = String::new();
                build(&mut text, json, "s3gate::access", SystemTime::now(), |f| {
                    f.u64("id", 7)
                        .u64("zero", 0)
                        .u64("max", u64::MAX)
                        .str("path", path)
                        .bool("complete", true);
                });
                assert_eq!(
                    cut_timestamp(&text),
                    through_tracing(json, path),
                    "json: {json}"
                );
            }
        }
    }
}
