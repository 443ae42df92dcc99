//! Small helpers: message ids, timestamps, backoff.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand_core::{OsRng, RngCore};

/// A fresh wire message id: the decimal form of a random `u64` (spec §7.2: Go uses a random
/// number; any unique string without `|` works). UNCONFIRMED format, `new_wire_id`.
pub(crate) fn new_wire_id() -> String {
    OsRng.next_u64().to_string()
}

/// `t` as RFC 3339 in UTC with second precision, e.g. `2025-01-02T03:04:05Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The last second RFC 3339 can write with a four-digit year: 9999-12-31T23:59:59Z.
pub(crate) const RFC3339_MAX_SECS: u64 = 253_402_300_799;

/// A time in seconds since 1970 that someone else chose (a group message's timestamp: any
/// u64), as RFC 3339; past year 9999 it is that year's last second (adding it to
/// `UNIX_EPOCH` would overflow, and panic, from 2^63 seconds on).
pub(crate) fn rfc3339_secs(secs: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_secs(secs.min(RFC3339_MAX_SECS)))
}

/// An RFC 3339 time (`2026-12-05T06:30:00Z`, `…:00.123+01:00`) as seconds and nanoseconds
/// since 1970 (UTC), to order times written in different offsets and precisions.
pub fn rfc3339_instant(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = s.get(start..i)?;
        if frac.is_empty() {
            return None;
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    let offset = match s.get(i..)? {
        "Z" | "z" => 0,
        o if o.len() == 6 && matches!(o.as_bytes()[0], b'+' | b'-') && o.as_bytes()[3] == b':' => {
            let mins = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if o.starts_with('-') {
                -mins
            } else {
                mins
            }
        }
        _ => return None,
    };
    // Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((
        days * 86_400 + h * 3600 + mi * 60 + sec - offset * 60,
        nanos,
    ))
}

/// The current time as [`rfc3339`].
pub(crate) fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Capped exponential backoff with jitter: each delay is drawn uniformly from
/// `[base/2, base]`, and `base` doubles from `initial` up to `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    base: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            base: initial,
        }
    }

    /// The next delay; doubles the base for the one after.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = jitter(self.base);
        self.base = (self.base * 2).min(self.max);
        d
    }

    /// Back to the initial delay (after a successful connection).
    pub(crate) fn reset(&mut self) {
        self.base = self.initial;
    }

    /// A jittered initial delay, without changing the state.
    pub(crate) fn short(&self) -> Duration {
        jitter(self.initial)
    }
}

/// A duration drawn uniformly from `[d/2, d]`.
pub(crate) fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_micros(OsRng.next_u64() % span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_order_across_offsets_and_precisions() {
        assert_eq!(rfc3339_instant("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            rfc3339_instant("2026-12-05T06:30:00Z"),
            Some((1_796_452_200, 0))
        );
        assert_eq!(
            rfc3339_instant("2026-12-05T07:30:00.25+01:00"),
            Some((1_796_452_200, 250_000_000))
        );
        assert_eq!(
            rfc3339_instant("2024-02-29T23:59:59-00:30"),
            Some((1_709_251_199 + 1800, 0))
        );
        // Later in the same second, though `.` sorts before `Z` as text.
        assert!(
            rfc3339_instant("2026-12-05T06:30:00.5Z") > rfc3339_instant("2026-12-05T06:30:00Z")
        );
        for bad in [
            "",
            "yesterday",
            "2026-12-05",
            "2026-13-05T06:30:00Z",
            "2026-12-05T06:30:00",
            "2026-12-05T06:30:00.Z",
            "2026-12-05T06:30:00+0100",
            "2026-12-05T06:30:00Zjunk",
            "２026-12-05T06:30:00Z",
        ] {
            assert_eq!(rfc3339_instant(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        /// Never panics, whatever the text.
        #[test]
        fn rfc3339_parsing_takes_anything(s in "\\PC{0,40}", t in "[0-9:T.Z+-]{15,32}") {
            let _ = rfc3339_instant(&s);
            let _ = rfc3339_instant(&t);
        }

        /// What [`rfc3339`] writes reads back as the same second.
        #[test]
        fn written_times_read_back(secs in 0u64..8_000_000_000) {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            proptest::prop_assert_eq!(rfc3339_instant(&rfc3339(t)), Some((secs as i64, 0)));
        }
    }

    #[test]
    fn any_remote_timestamp_is_a_time() {
        assert_eq!(rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_secs(1_735_787_045),
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_735_787_045))
        );
        for huge in [RFC3339_MAX_SECS, RFC3339_MAX_SECS + 1, 1 << 63, u64::MAX] {
            assert_eq!(rfc3339_secs(huge), "9999-12-31T23:59:59Z", "{huge}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_735_787_045)),
            "2025-01-02T03:04:05Z"
        );
    }

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(300));
        let mut bases = Vec::new();
        for _ in 0..12 {
            let d = b.next_delay();
            bases.push(d);
        }
        assert!(bases[0] >= Duration::from_secs(1) && bases[0] <= Duration::from_secs(2));
        assert!(bases[1] >= Duration::from_secs(2) && bases[1] <= Duration::from_secs(4));
        assert!(bases[11] >= Duration::from_secs(150) && bases[11] <= Duration::from_secs(300));
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(2));
        assert!(!new_wire_id().contains('|'));
        assert_ne!(new_wire_id(), new_wire_id());
    }
}
