//! A start request's body, parsed and checked before anything starts: the same for every
//! stage and for the delivery lab, pure (no broker, no engine), so that any JSON a caller can
//! send is either a configuration to run with or a 400 whose message starts with the field it
//! is about (`config:` when the body as a whole is not an object of settings).

use app::api::DeliveryLabRequest;
use serde::de::DeserializeOwned;

use crate::error::ConfigError;
use crate::lab::{self, LabPlan};
use crate::stage::{StageId, checked};
use crate::stages::{
    AggregateStage, IndexerStage, ParquetStage, ProducerStage, SentimentStage, StreamerStage,
};

/// Parses and checks the body of `POST /api/stages/{stage}/start` as the engine does before
/// starting (see [`crate::stages::Slot`]), and gives back the config as it would run: with every
/// default filled in. The embedded broker takes no settings (its body is ignored). The LLM
/// classifier's settings come from the environment and are checked when the sentiment stage
/// starts, not here.
pub fn check(stage: StageId, body: serde_json::Value) -> Result<serde_json::Value, ConfigError> {
    fn config_of<S: crate::stage::Stage>(
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ConfigError> {
        let (config, _) = checked::<S>(body)?;
        Ok(serde_json::to_value(config).unwrap_or_default())
    }
    match stage {
        StageId::Broker => Ok(serde_json::Value::Null),
        StageId::Streamer => config_of::<StreamerStage>(body),
        StageId::Producer => config_of::<ProducerStage>(body),
        StageId::Sentiment => config_of::<SentimentStage>(body),
        StageId::Aggregate => config_of::<AggregateStage>(body),
        StageId::Parquet => config_of::<ParquetStage>(body),
        StageId::Indexer => config_of::<IndexerStage>(body),
    }
}

/// Parses and checks the body of `POST /api/lab/delivery`.
pub fn parse_lab_request(body: serde_json::Value) -> Result<LabPlan, ConfigError> {
    let request: DeliveryLabRequest = parse_config(body)?;
    lab::validate(&request)
}

/// Parses a stage config; an empty body means "all defaults". A wrong field's message starts
/// with its name (serde_path_to_error puts the path in front); a body that is not an object of
/// settings at all starts with `config:`.
pub fn parse_config<T: DeserializeOwned>(body: serde_json::Value) -> Result<T, ConfigError> {
    let body = match body {
        serde_json::Value::Null => serde_json::json!({}),
        object @ serde_json::Value::Object(_) => object,
        // serde's derived structs also take an array of values in field order: `[0, 5000]`
        // would be rate 0, chunk size 5000. Settings are named, never positional.
        other => {
            return Err(ConfigError::new(
                "config",
                format!(
                    "expected a JSON object of settings, got {}",
                    json_kind(&other)
                ),
            ));
        }
    };
    serde_path_to_error::deserialize(body).map_err(ConfigError::from_serde)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use crate::pipeline::EngineError;
    use app::api::StreamerConfig;
    use axum::http::StatusCode;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// Checks a body for a stage by its id, or for the lab.
    fn check_any(stage: &str, body: Value) -> Result<Value, ConfigError> {
        if stage == LAB {
            return parse_lab_request(body).map(|_| Value::Null);
        }
        let id: StageId = stage.parse().expect("a stage id");
        super::check(id, body)
    }

    #[test]
    fn empty_body_means_defaults_and_typos_are_named() {
        let config: StreamerConfig = parse_config(Value::Null).expect("defaults");
        assert_eq!(config, StreamerConfig::default());
        let err = parse_config::<StreamerConfig>(json!({"chunk": 5})).expect_err("unknown field");
        assert!(err.to_string().starts_with("chunk:"), "{err}");
        let err = parse_config::<StreamerConfig>(json!({"rate": "fast"})).expect_err("wrong type");
        assert!(err.to_string().starts_with("rate:"), "{err}");
        // serde would take an array as the fields in order (rate 1, chunk size 2).
        let err = parse_config::<StreamerConfig>(json!([1, 2])).expect_err("not an object");
        assert!(err.to_string().starts_with("config:"), "{err}");
        let err = parse_config::<StreamerConfig>(json!("fast")).expect_err("not an object");
        assert!(err.to_string().starts_with("config:"), "{err}");
    }

    #[test]
    fn every_stage_accepts_its_defaults_and_refuses_an_unknown_stage() {
        for stage in STAGES {
            assert!(check_any(stage, Value::Null).is_ok(), "{stage} defaults");
            assert!(check_any(stage, json!({})).is_ok(), "{stage} {{}}");
        }
        assert!(parse_lab_request(Value::Null).is_ok());
        assert!(matches!(
            "nope".parse::<StageId>(),
            Err(EngineError::UnknownStage(_))
        ));
    }

    #[test]
    fn group_names_and_threshold_fields_are_checked() {
        // A NUL in a group name: librdkafka cannot take it, and the groups table failed as a
        // whole while such a group was listed.
        for stage in ["sentiment", "aggregate", "parquet", "indexer"] {
            let err = check_any(stage, json!({"group": "a\u{0}b"})).expect_err("NUL in group");
            assert_eq!(err.field, "group", "{stage}: {err}");
            let err =
                check_any(stage, json!({"group": "g".repeat(10_000)})).expect_err("long group");
            assert_eq!(err.field, "group", "{stage}: {err}");
        }
        // The sentiment stage had no group check at all: an empty group started workers that
        // could not subscribe.
        let err = check_any("sentiment", json!({"group": ""})).expect_err("empty");
        assert!(err.to_string().starts_with("group:"), "{err}");
        // Threshold errors were named `thresholds`, which is not a field of the request.
        let err =
            check_any("sentiment", json!({"negative_threshold": 5})).expect_err("out of range");
        assert!(err.to_string().starts_with("negative_threshold:"), "{err}");
    }

    const STAGES: [&str; 6] = [
        "streamer",
        "producer",
        "sentiment",
        "aggregate",
        "parquet",
        "indexer",
    ];
    const LAB: &str = "lab";

    /// A stage's (or the lab's) default config, every field serialised.
    fn defaults(stage: &str) -> Value {
        if stage == LAB {
            return serde_json::to_value(DeliveryLabRequest::default()).expect("serialises");
        }
        check_any(stage, Value::Null).expect("defaults are valid")
    }

    /// The fields of a config, as its default serialises.
    fn fields(stage: &str) -> Vec<String> {
        match defaults(stage) {
            Value::Object(map) => map.keys().cloned().collect(),
            other => panic!("a config serialises to an object, got {other:?}"),
        }
    }

    /// What the property asserts of any body: a config, or a 400 whose message starts with one
    /// of the config's fields, a key of the body (an unknown field), or `config:`.
    fn check(stage: &str, body: Value) -> Result<(), TestCaseError> {
        let keys: Vec<String> = body
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let Err(error) = check_any(stage, body) else {
            return Ok(());
        };
        let message = error.to_string();
        let named = message.starts_with("config: ")
            || fields(stage)
                .iter()
                .chain(&keys)
                .any(|name| message.starts_with(&format!("{name}: ")));
        prop_assert!(named, "{stage}: message names no field: {message}");
        let status = ApiError::from(EngineError::from(error)).status;
        prop_assert_eq!(status, StatusCode::BAD_REQUEST, "{}: {}", stage, message);
        Ok(())
    }

    fn any_stage() -> impl Strategy<Value = &'static str> {
        prop::sample::select(STAGES.into_iter().chain([LAB]).collect::<Vec<_>>())
    }

    /// Numbers at and past every edge a field may have.
    fn edge_number() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!(0)),
            Just(json!(-1)),
            Just(json!(1)),
            Just(json!(u8::MAX as u64 + 1)),
            Just(json!(u32::MAX)),
            Just(json!(u32::MAX as u64 + 1)),
            Just(json!(u64::MAX)),
            Just(json!(i64::MIN)),
            Just(json!(-0.0)),
            Just(json!(0.5)),
            Just(json!(1e300)),
            Just(json!(-1e300)),
            Just(json!(f64::MIN_POSITIVE)),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
                .map(Value::Number)),
        ]
    }

    /// Strings that look like numbers, addresses, paths or nothing at all.
    fn edge_string() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!("")),
            Just(json!(" ")),
            Just(json!("NaN")),
            Just(json!("Infinity")),
            Just(json!("-inf")),
            Just(json!("1e999")),
            Just(json!("generator")),
            Just(json!("127.0.0.1:0")),
            Just(json!("[::1]:0")),
            Just(json!("a\u{0}b")),
            Just(json!("\u{202e}\u{fffd}\u{1f600}")),
            Just(json!("x".repeat(100_000))),
            Just(json!("../../etc/passwd")),
            "\\PC{0,40}".prop_map(Value::from),
            ".{0,20}".prop_map(Value::from),
        ]
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            edge_number(),
            edge_string(),
        ]
    }

    /// Keys: mostly the configs' own field names, so that wrong values reach the validators.
    fn key() -> impl Strategy<Value = String> {
        let mut names: Vec<String> = STAGES
            .iter()
            .chain(&[LAB])
            .flat_map(|s| fields(s))
            .collect();
        names.sort();
        names.dedup();
        prop_oneof![
            3 => prop::sample::select(names),
            1 => "\\PC{0,12}",
        ]
    }

    /// Any JSON tree, a few levels deep.
    fn json_value() -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A stage's default config with one to three fields replaced by anything.
    fn near_valid() -> impl Strategy<Value = (&'static str, Value)> {
        any_stage().prop_flat_map(|stage| {
            let base = defaults(stage);
            let names = fields(stage);
            let replacement = prop_oneof![json_leaf(), json_value()];
            prop::collection::vec((prop::sample::select(names), replacement), 1..=3).prop_map(
                move |changes| {
                    let mut body = base.clone();
                    for (name, value) in changes {
                        body[name.as_str()] = value;
                    }
                    (stage, body)
                },
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn any_json_is_a_config_or_a_400_naming_a_field(
            stage in any_stage(),
            body in json_value(),
        ) {
            check(stage, body)?;
        }

        #[test]
        fn near_valid_configs_are_a_config_or_a_400_naming_a_field(
            (stage, body) in near_valid(),
        ) {
            check(stage, body)?;
        }
    }
}
