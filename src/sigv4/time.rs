//! Timestamps in the formats SigV4 and s3gate's JSON use, formatted by hand.
//!
//! Times before the Unix epoch are clamped to the epoch and times after
//! 9999-12-31T23:59:59Z to that instant, so every format has fixed width.

// Civil-date arithmetic yields years, months and days in range, and the
// timestamp buffers hold only ASCII digits and separators: the casts and
// `expect`s below state invariants, pinned by this module's tests.
#![allow(clippy::expect_used, clippy::cast_possible_truncation)]

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds from the epoch to 9999-12-31T23:59:59Z, the last instant with a 4-digit year.
const MAX_SECS: u64 = 253_402_300_799;

/// A UTC instant broken down into civil fields (whole seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Civil {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Civil {
    fn new(t: SystemTime) -> Self {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .min(MAX_SECS);
        let days = secs / 86_400;
        let sod = (secs % 86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
        }
    }
}

/// Converts days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`, restricted to non-negative days).
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year as u32, month as u32, day as u32)
}

#[inline]
fn put2(out: &mut [u8], v: u32) {
    out[0] = b'0' + (v / 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

#[inline]
fn put4(out: &mut [u8], v: u32) {
    put2(&mut out[..2], v / 100);
    put2(&mut out[2..4], v % 100);
}

/// A signing time in SigV4's formats, `YYYYMMDDTHHMMSSZ` and `YYYYMMDD`, held in a
/// fixed buffer (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AmzTime {
    buf: [u8; 16],
    date: u32,
}

impl AmzTime {
    /// Formats `t` (whole seconds, UTC).
    pub fn new(t: SystemTime) -> Self {
        let c = Civil::new(t);
        let mut buf = *b"00000000T000000Z";
        put4(&mut buf[0..4], c.year);
        put2(&mut buf[4..6], c.month);
        put2(&mut buf[6..8], c.day);
        put2(&mut buf[9..11], c.hour);
        put2(&mut buf[11..13], c.minute);
        put2(&mut buf[13..15], c.second);
        AmzTime {
            buf,
            date: c.year * 10_000 + c.month * 100 + c.day,
        }
    }

    /// `YYYYMMDDTHHMMSSZ`, the `X-Amz-Date` value.
    pub fn date_time(&self) -> &str {
        std::str::from_utf8(&self.buf).expect("AmzTime is ASCII")
    }

    /// `YYYYMMDD`, the credential-scope date.
    pub fn date(&self) -> &str {
        &self.date_time()[..8]
    }

    /// The credential-scope date as the integer `YYYYMMDD` (cheap to compare).
    pub fn date_number(&self) -> u32 {
        self.date
    }
}

impl std::fmt::Debug for AmzTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AmzTime").field(&self.date_time()).finish()
    }
}

/// Formats `t` as RFC 3339 in UTC with whole seconds, e.g. `2013-05-24T00:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let c = Civil::new(t);
    let mut buf = *b"0000-00-00T00:00:00Z";
    put4(&mut buf[0..4], c.year);
    put2(&mut buf[5..7], c.month);
    put2(&mut buf[8..10], c.day);
    put2(&mut buf[11..13], c.hour);
    put2(&mut buf[14..16], c.minute);
    put2(&mut buf[17..19], c.second);
    String::from_utf8(buf.to_vec()).expect("RFC 3339 timestamp is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn known_instants() {
        let cases: &[(u64, &str, &str)] = &[
            (0, "19700101T000000Z", "1970-01-01T00:00:00Z"),
            (1_369_353_600, "20130524T000000Z", "2013-05-24T00:00:00Z"),
            (1_440_938_160, "20150830T123600Z", "2015-08-30T12:36:00Z"),
            (951_782_400, "20000229T000000Z", "2000-02-29T00:00:00Z"),
            (1_709_251_199, "20240229T235959Z", "2024-02-29T23:59:59Z"),
            (4_102_444_800, "21000101T000000Z", "2100-01-01T00:00:00Z"),
            (4_107_542_399, "21000228T235959Z", "2100-02-28T23:59:59Z"),
            (4_107_542_400, "21000301T000000Z", "2100-03-01T00:00:00Z"),
            (MAX_SECS, "99991231T235959Z", "9999-12-31T23:59:59Z"),
        ];
        for &(secs, amz, rfc) in cases {
            let t = AmzTime::new(at(secs));
            assert_eq!(t.date_time(), amz, "{secs}");
            assert_eq!(t.date(), &amz[..8]);
            assert_eq!(t.date_number().to_string(), &amz[..8]);
            assert_eq!(rfc3339(at(secs)), rfc, "{secs}");
        }
    }

    #[test]
    fn sub_second_and_out_of_range() {
        let t = at(1_369_353_600) + Duration::from_millis(999);
        assert_eq!(rfc3339(t), "2013-05-24T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(rfc3339(at(MAX_SECS + 86_400)), "9999-12-31T23:59:59Z");
    }

    /// Every day for 2000 years round-trips through a naive day counter.
    #[test]
    fn civil_matches_naive_calendar() {
        let (mut y, mut m, mut d) = (1970u32, 1u32, 1u32);
        for days in 0..(2000 * 366) {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}
