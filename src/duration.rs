// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Durations as MCM writes and reads them (Go's `time.Duration` text).

use std::time::Duration;

/// Parses a duration such as `20m`, `1h30m0s` or `90s`.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// Formats like Go's `Duration.String()`: `20m0s`, `1h0m0s`, `1.5s`, `250ms`.
pub(crate) fn format_go(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (unit, scale) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(nanos, scale));
    }
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    let s = fraction(
        u128::from(secs % 60) * 1_000_000_000 + u128::from(d.subsec_nanos()),
        1_000_000_000,
    );
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// `value / scale` with the fractional digits Go prints (trailing zeros dropped).
fn fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// How long ago `since` was at `now`; zero when unknown or in the future.
pub(crate) fn age(since: Option<&jiff::Timestamp>, now: jiff::Timestamp) -> Duration {
    since
        .and_then(|t| Duration::try_from(now.duration_since(*t)).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_counts_from_a_past_time_only() {
        let now = jiff::Timestamp::now();
        let past = now - jiff::SignedDuration::from_secs(60);
        assert_eq!(age(Some(&past), now), Duration::from_secs(60));
        let future = now + jiff::SignedDuration::from_secs(60);
        assert_eq!(age(Some(&future), now), Duration::ZERO);
        assert_eq!(age(None, now), Duration::ZERO);
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (Duration::from_secs(20 * 60), "20m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(7200 + 90), "2h1m30s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(12), "12ns"),
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(61_000_000_001), "1m1.000000001s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_go(d), want, "{d:?}");
        }
    }

    #[test]
    fn parses_go_and_flag_forms() {
        assert_eq!(parse("20m").unwrap(), Duration::from_secs(1200));
        assert_eq!(parse("1h30m0s").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert!(parse("soon").unwrap_err().contains("soon"));
    }
}
