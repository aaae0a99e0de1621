//! Timestamps as AWS prints them: ISO-8601 / RFC 3339 in UTC with milliseconds
//! (`2018-02-21T13:22:12.644Z`), used by DescribeFlowLogs' `creationTime` and `flowlog logs`.

/// Milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso8601_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_with_milliseconds() {
        assert_eq!(
            super::iso8601_ms(1_519_219_332_644),
            "2018-02-21T13:22:12.644Z"
        );
        assert_eq!(super::iso8601_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
