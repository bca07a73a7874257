//! Prometheus durations (`1m30s`), normalised.
//!
//! smo's descriptor validation accepts units in any order and repeated (`30s1m`), while
//! Prometheus and the `PrometheusRule` CRD want each unit at most once, largest first
//! (`^(0|(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?)$`). Rather than pass a value that
//! makes Prometheus refuse a whole rule file, smo adds the parts up and writes the total the way
//! Prometheus itself prints durations.

use super::MonitoringError;

const MS: u64 = 1;
const SECOND: u64 = 1000 * MS;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const WEEK: u64 = 7 * DAY;
const YEAR: u64 = 365 * DAY;

/// Longest first, so `ms` is not read as `m` followed by garbage.
const UNITS: [(&str, u64); 7] = [
    ("ms", MS),
    ("s", SECOND),
    ("m", MINUTE),
    ("h", HOUR),
    ("d", DAY),
    ("w", WEEK),
    ("y", YEAR),
];

/// Normalises a duration to the canonical form Prometheus prints (`90s` → `1m30s`,
/// `30s1m` → `1m30s`, `14d` → `2w`, `0` → `0s`).
///
/// Accepted: surrounding whitespace; `<digits><unit>` parts with units `ms s m h d w y` in any
/// order, repeats added up; a bare number, read as seconds (YAML turns `gracePeriod: 60` into a
/// number, and seconds is what a person writing it means). Refused, with the reason: empty
/// text, fractions (`1.5m`), signs, unknown units (`2M`, `2 min`), and totals beyond what
/// Prometheus can hold (2^63 − 1 ms).
pub fn prometheus_duration(raw: &str) -> Result<String, MonitoringError> {
    let bad = |reason: &str| MonitoringError::InvalidDuration {
        value: raw.to_string(),
        reason: reason.to_string(),
    };
    let text = raw.trim();
    if text.is_empty() {
        return Err(bad("empty; expected e.g. 30s, 2m or 1h30m"));
    }
    let too_long = || bad("too long for Prometheus (more than 292 million years)");
    let mut total: u64 = 0;
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = text.parse().map_err(|_| too_long())?;
        total = n.checked_mul(SECOND).ok_or_else(too_long)?;
    } else {
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad(
                    "expected a number followed by a unit (ms, s, m, h, d, w, y), e.g. 1m30s",
                ));
            }
            let n: u64 = rest[..digits].parse().map_err(|_| too_long())?;
            rest = &rest[digits..];
            let Some((unit, mult)) = UNITS.iter().find(|(u, _)| rest.starts_with(u)) else {
                return Err(bad("unknown unit; use ms, s, m, h, d, w or y (e.g. 1m30s)"));
            };
            rest = &rest[unit.len()..];
            total = n
                .checked_mul(*mult)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(too_long)?;
        }
    }
    if total > i64::MAX as u64 {
        return Err(too_long());
    }
    Ok(format_millis(total))
}

/// Prometheus's `model.Duration.String`: years and weeks only when they divide the whole
/// duration exactly, then days down to milliseconds.
fn format_millis(mut ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, mult, exact) in [
        ("y", YEAR, true),
        ("w", WEEK, true),
        ("d", DAY, false),
        ("h", HOUR, false),
        ("m", MINUTE, false),
        ("s", SECOND, false),
        ("ms", MS, false),
    ] {
        if exact && !ms.is_multiple_of(mult) {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            out.push_str(&v.to_string());
            out.push_str(unit);
            ms -= v * mult;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        prometheus_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn canonical_values_stay_as_they_are() {
        for s in [
            "0s", "30s", "1m", "2m", "1m30s", "1h30m", "5m", "1d", "2w", "1y", "250ms",
        ] {
            assert_eq!(ok(s), s);
        }
    }

    #[test]
    fn other_spellings_are_normalised() {
        assert_eq!(ok("90s"), "1m30s");
        assert_eq!(ok("30s1m"), "1m30s");
        assert_eq!(ok("1m1m"), "2m");
        assert_eq!(ok("0"), "0s");
        assert_eq!(ok("60"), "1m");
        assert_eq!(ok(" 2m "), "2m");
        assert_eq!(ok("14d"), "2w");
        assert_eq!(ok("8d"), "8d");
        assert_eq!(ok("1500ms"), "1s500ms");
        assert_eq!(ok("120m"), "2h");
        assert_eq!(ok("0m0s"), "0s");
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for s in [
            "", "  ", "1.5m", "-1m", "+1m", "2M", "2 min", "m", "1m30", "PT2M", "1x",
        ] {
            let e = prometheus_duration(s).expect_err(s);
            assert!(
                matches!(e, MonitoringError::InvalidDuration { .. }),
                "{s}: {e}"
            );
        }
        let huge = prometheus_duration("99999999999999999999y").expect_err("huge");
        assert!(huge.to_string().contains("too long"), "{huge}");
        assert!(prometheus_duration("300000000y").is_err());
        assert!(prometheus_duration("99999999999999999999").is_err());
    }
}
