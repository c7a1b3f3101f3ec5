//! JSON types of Pipebook's control API, shared by the server (which produces them) and the
//! browser (which draws them). Field names are the wire format documented in `docs/api.md`.
//!
//! Split by domain in the order data flows; every type is re-exported here, so `crate::api::X`
//! names it wherever it lives.

mod aggregate;
mod incidents;
mod lab;
mod lesson;
mod pipeline;
mod search;
mod sentiment;
mod streamer;
mod trace;
mod workers;

pub use aggregate::*;
pub use incidents::*;
pub use lab::*;
pub use lesson::*;
pub use pipeline::*;
pub use search::*;
pub use sentiment::*;
pub use streamer::*;
pub use trace::*;
pub use workers::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamer_config_fills_defaults_and_refuses_unknown_fields() {
        let config: StreamerConfig = serde_json::from_str(r#"{"rate": 10}"#).expect("valid");
        assert_eq!(config.rate, 10);
        assert_eq!(config.chunk_size, 50);
        assert_eq!(config.source, "generator");
        let err = serde_json::from_str::<StreamerConfig>(r#"{"rat": 10}"#).expect_err("typo");
        assert!(err.to_string().contains("rat"), "{err}");
    }

    #[test]
    fn dataset_names_follow_one_rule_and_errors_name_the_field() {
        for good in [
            "sample-yelp.jsonl",
            "a.json",
            "Yelp_2019.v2.jsonl",
            &("x".repeat(94) + ".jsonl"),
        ] {
            assert_eq!(check_dataset_name(good), Ok(()), "{good}");
        }
        let too_long = "x".repeat(95) + ".jsonl";
        for bad in [
            "",
            ".hidden.jsonl",
            ".jsonl",
            "../etc/passwd.jsonl",
            "/etc/passwd.json",
            "a b.jsonl",
            "a\0.jsonl",
            "reviews.csv",
            "reviews",
            "réviews.jsonl",
            too_long.as_str(),
        ] {
            let err = check_dataset_name(bad).expect_err(bad);
            assert!(err.starts_with("name: "), "{bad:?}: {err}");
        }
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(100 * 1024 * 1024), "100 MiB");
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1_300_000), "1.2 MiB");
        assert_eq!(human_bytes(999), "999 bytes");
    }

    #[test]
    fn pipeline_status_without_the_sockets_flag_reads_as_loopback_only() {
        let status: PipelineStatus =
            serde_json::from_str(r#"{"kafka": {"mode": "embedded", "bootstrap_servers": "x", "state": "running", "last_error": null}, "stages": []}"#)
                .expect("older status");
        assert!(!status.network_sockets_allowed);
    }

    #[test]
    fn sentiment_serialises_upper_case() {
        let json = serde_json::to_string(&Sentiment::Negative).expect("serialise");
        assert_eq!(json, r#""NEGATIVE""#);
    }
}
