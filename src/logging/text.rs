//! The text line format for a log that is not a terminal (files, journald):
//! `2026-12-04T18:56:33.123456Z  INFO target: message key=value ...`, as
//! `tracing_subscriber`'s default format writes it without colours.
//!
//! Written here because the default formatter costs ≈ 16,000 instructions
//! per access line (styles applied even when off, a date computed from
//! scratch, each field through several formatting layers): 22 % of the
//! instructions of a cache hit (callgrind). This one costs a fraction.

use std::cell::RefCell;
use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The plain text format.
#[derive(Debug, Default)]
pub(super) struct Text;

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write_timestamp(&mut writer, SystemTime::now())?;
        let meta = event.metadata();
        write!(writer, " {:>5} {}:", meta.level().as_str(), meta.target())?;
        let mut fields = Fields {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// Writes each field as ` name=value` (the message as itself).
struct Fields<'w, 'a> {
    writer: &'w mut Writer<'a>,
    result: fmt::Result,
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        if name.as_bytes().starts_with(b"log.") {
            return;
        }
        let writer = &mut self.writer;
        self.result = if name == "message" {
            writer.write_char(' ')
        } else {
            let name = name.strip_prefix("r#").unwrap_or(name);
            writer
                .write_char(' ')
                .and_then(|()| writer.write_str(name))
                .and_then(|()| writer.write_char('='))
        }
        .and_then(|()| write!(Escaped(&mut **writer), "{value:?}"));
    }
}

/// Writes through, with control characters (line breaks, terminal escapes),
/// Unicode's line and paragraph separators and its direction overrides as
/// `\u{…}`: text from a store, STS or a file can neither split a line (for
/// a viewer that breaks at U+2028) nor drive or reorder what a terminal shows.
pub(super) struct Escaped<'w, W: Write>(pub(super) &'w mut W);

/// Whether `c` is written as it is.
fn is_plain(c: char) -> bool {
    match c {
        '\t' => true,
        '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => false,
        c => !c.is_control(),
    }
}

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if text.chars().all(is_plain) {
            return self.0.write_str(text);
        }
        for c in text.chars() {
            if is_plain(c) {
                self.0.write_char(c)?;
            } else {
                write!(self.0, "\\u{{{:x}}}", u32::from(c))?;
            }
        }
        Ok(())
    }
}

thread_local! {
    /// The second last written by this thread, and its text up to the seconds.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `time` as RFC 3339 in UTC with microseconds; the date and time of day are
/// computed once per second per thread.
pub(super) fn write_timestamp(writer: &mut impl Write, time: SystemTime) -> fmt::Result {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != secs {
            *second = secs;
            text.clear();
            write_date_time(text, secs)?;
        }
        writer.write_str(text)?;
        let mut micros = *b".000000Z";
        let mut n = since.subsec_micros();
        for digit in micros[1..7].iter_mut().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
        }
        writer.write_str(std::str::from_utf8(&micros).unwrap_or(".000000Z"))
    })
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SS` (the proleptic Gregorian
/// calendar, from days since the epoch by the civil-from-days algorithm).
fn write_date_time(out: &mut impl Write, secs: u64) -> fmt::Result {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let (hour, minute, second) = (rest / 3_600, rest % 3_600 / 60, rest % 60);
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn timestamp(secs: u64, micros: u32) -> String {
        let mut out = String::new();
        let time = UNIX_EPOCH + Duration::new(secs, micros * 1_000);
        write_timestamp(&mut out, time).unwrap();
        out
    }

    #[test]
    fn timestamps_are_rfc3339_in_utc() {
        assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(timestamp(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(
            timestamp(1_796_408_193, 123_456),
            "2026-12-04T18:16:33.123456Z"
        );
        assert_eq!(
            timestamp(4_107_542_399, 999_999),
            "2100-02-28T23:59:59.999999Z"
        );
        // The same second again, from the per-thread text.
        assert_eq!(timestamp(4_107_542_399, 1), "2100-02-28T23:59:59.000001Z");
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut out = String::new();
        write!(Escaped(&mut out), "a\nb\x1b[31m\tc\u{85}d é").unwrap();
        assert_eq!(out, "a\\u{a}b\\u{1b}[31m\tc\\u{85}d é");
    }

    #[test]
    fn line_separators_and_direction_overrides_are_escaped() {
        let mut out = String::new();
        write!(
            Escaped(&mut out),
            "a\u{2028}b\u{2029}c\u{202e}d\u{2066}e\u{200b}f"
        )
        .unwrap();
        assert_eq!(out, "a\\u{2028}b\\u{2029}c\\u{202e}d\\u{2066}e\u{200b}f");
    }

    #[test]
    fn lines_read_as_the_default_format_does() {
        use super::super::TestBuffer as Buffer;

        fn line_of(text: bool) -> String {
            let buffer = Buffer::default();
            let builder = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(buffer.clone());
            let event = || {
                let path = "/a b";
                tracing::warn!(target: "s3gate::access", status = 200u16, path = %path, name = "x", ok = true, "done");
            };
            if text {
                tracing::subscriber::with_default(builder.event_format(Text).finish(), event);
            } else {
                tracing::subscriber::with_default(builder.finish(), event);
            }
            let line = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
            assert!(
                line.as_bytes()[10] == b'T' && line.as_bytes()[26] == b'Z',
                "{line}"
            );
            line[27..].to_owned()
        }
        assert_eq!(line_of(true), line_of(false));
        assert_eq!(
            line_of(true),
            "  WARN s3gate::access: done status=200 path=/a b name=\"x\" ok=true\n"
        );
    }
}
