//! Clock reads and the few time formats the pages use (UTC only, no time-zone database).

/// Unix milliseconds now; a clock before 1970 reads as 0.
pub(crate) fn now_ms() -> i64 {
    supercp_core::time::now_ms()
}

/// `2023-11-14 22:13:20 UTC` for unix milliseconds `ms` (sub-second part dropped).
pub(crate) fn utc(ms: i64) -> String {
    // supercp_core's `2023-11-14T22:13:20Z`, spelled for a page.
    let iso = supercp_core::time::utc(ms);
    match (iso.get(..10), iso.get(11..19)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => iso,
    }
}

/// A duration for humans: `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub(crate) fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{} min {:02} s", ms / 60_000, ms % 60_000 / 1000)
    } else {
        format!("{} h {:02} min", ms / 3_600_000, ms % 3_600_000 / 60_000)
    }
}

/// `in 4 min 05 s` or `12.3 s ago`, from `now_ms` to `at_ms`.
pub(crate) fn relative(at_ms: i64, now_ms: i64) -> String {
    if at_ms >= now_ms {
        format!("in {}", duration(at_ms - now_ms))
    } else {
        format!("{} ago", duration(now_ms - at_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_and_known_instants_format_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(4_107_542_399_000), "2100-02-28 23:59:59 UTC");
        assert_eq!(utc(-1000), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration(-5), "0 ms");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_345), "12.3 s");
        assert_eq!(duration(245_000), "4 min 05 s");
        assert_eq!(duration(7_380_000), "2 h 03 min");
    }

    #[test]
    fn relative_times_say_in_or_ago() {
        assert_eq!(relative(10_500, 10_000), "in 500 ms");
        assert_eq!(relative(10_000, 12_000), "2.0 s ago");
    }
}
