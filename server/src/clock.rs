//! Wall-clock time as the API and the topics carry it: milliseconds since the Unix epoch.

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
