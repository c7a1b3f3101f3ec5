//! What a topic carries, read off its records (`GET /api/kafka/topics/{topic}/schema`): the JSON
//! fields of the newest records with their types, how often each is present or null, and an
//! example — the view a schema registry gives, inferred because Pipebook's topics carry plain
//! JSON. For the dead-letter topic, the refusals grouped by stage and reason.

use std::collections::HashMap;

use app::api::Message;
use app::ops::{DeadLetterReason, FieldSchema, TopicSchema};
use serde_json::Value;

use crate::records::DeadLetter;

/// Most records a schema request reads; the default is smaller.
pub const MAX_SAMPLE: usize = 500;
pub const DEFAULT_SAMPLE: usize = 200;
/// Nesting followed into objects and arrays; deeper values count as their container's type.
const MAX_DEPTH: usize = 4;
/// Distinct field paths kept: a topic of records with random keys must not grow the answer.
const MAX_FIELDS: usize = 200;
const EXAMPLE_CHARS: usize = 80;

/// Infers the schema of `topic` from `records`; `dead_letters` groups them as dead letters too.
pub fn infer(topic: &str, records: &[Message], dead_letters: bool) -> TopicSchema {
    let mut fields = Fields::default();
    let mut not_objects = 0;
    for record in records {
        match serde_json::from_str::<Value>(&record.value) {
            Ok(Value::Object(object)) => {
                for (name, value) in &object {
                    fields.visit(name.clone(), value, 1);
                }
            }
            _ => not_objects += 1,
        }
    }
    let sampled = count(records.len());
    TopicSchema {
        topic: topic.to_owned(),
        sampled,
        not_objects,
        fields: fields.finish(sampled),
        dead_letters: if dead_letters {
            group_dead_letters(records)
        } else {
            Vec::new()
        },
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[derive(Default)]
struct Field {
    types: Vec<(&'static str, u32)>,
    present: u32,
    nulls: u32,
    example: Option<String>,
}

/// Fields by path, in order of first appearance.
#[derive(Default)]
struct Fields {
    order: Vec<String>,
    by_path: HashMap<String, Field>,
}

impl Fields {
    fn visit(&mut self, path: String, value: &Value, depth: usize) {
        if !self.by_path.contains_key(&path) {
            if self.order.len() >= MAX_FIELDS {
                return;
            }
            self.order.push(path.clone());
        }
        let field = self.by_path.entry(path.clone()).or_default();
        field.present += 1;
        if value.is_null() {
            field.nulls += 1;
            return;
        }
        let kind = type_name(value);
        match field.types.iter_mut().find(|(name, _)| *name == kind) {
            Some((_, n)) => *n += 1,
            None => field.types.push((kind, 1)),
        }
        if field.example.is_none() {
            field.example = Some(example_of(value));
        }
        if depth >= MAX_DEPTH {
            return;
        }
        match value {
            Value::Object(object) => {
                for (name, inner) in object {
                    self.visit(format!("{path}.{name}"), inner, depth + 1);
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.visit(format!("{path}[]"), item, depth + 1);
                }
            }
            _ => {}
        }
    }

    fn finish(mut self, sampled: u32) -> Vec<FieldSchema> {
        self.order
            .into_iter()
            .filter_map(|path| {
                let mut field = self.by_path.remove(&path)?;
                field.types.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
                Some(FieldSchema {
                    presence: if sampled == 0 {
                        0.0
                    } else {
                        (f64::from(field.present) / f64::from(sampled)).min(1.0)
                    },
                    path,
                    types: field
                        .types
                        .into_iter()
                        .map(|(name, n)| (name.to_owned(), n))
                        .collect(),
                    present: field.present,
                    nulls: field.nulls,
                    example: field.example.unwrap_or_default(),
                })
            })
            .collect()
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn example_of(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match text.char_indices().nth(EXAMPLE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The reason without its particulars: what a stage writes after `: ` (a parser's message) or
/// `, got ` (the offending value) differs per record, the rule broken does not.
pub fn reason_kind(reason: &str) -> &str {
    let cut = [": ", ", got "]
        .iter()
        .filter_map(|separator| reason.find(separator))
        .min()
        .unwrap_or(reason.len());
    reason[..cut].trim()
}

/// Groups dead letters by stage and reason kind, most frequent first; the example is the
/// newest of each group. Records that are not dead letters are skipped.
fn group_dead_letters(records: &[Message]) -> Vec<DeadLetterReason> {
    let mut groups: Vec<DeadLetterReason> = Vec::new();
    let mut newest: Vec<(i64, i32, i64)> = Vec::new();
    for record in records {
        let Ok(letter) = serde_json::from_str::<DeadLetter>(&record.value) else {
            continue;
        };
        let order = (
            record.timestamp.unwrap_or(0),
            record.partition,
            record.offset,
        );
        let kind = reason_kind(&letter.reason);
        let found = groups
            .iter()
            .position(|g| g.stage == letter.stage && g.reason == kind);
        match found {
            Some(i) => {
                groups[i].count += 1;
                if order > newest[i] {
                    newest[i] = order;
                    groups[i].example_reason = letter.reason.clone();
                    groups[i].example_raw = example_of(&Value::String(letter.raw.clone()));
                }
            }
            None => {
                groups.push(DeadLetterReason {
                    stage: letter.stage.clone(),
                    reason: kind.to_owned(),
                    count: 1,
                    example_reason: letter.reason.clone(),
                    example_raw: example_of(&Value::String(letter.raw.clone())),
                });
                newest.push(order);
            }
        }
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, value: &str) -> Message {
        Message {
            partition: 0,
            offset,
            timestamp: Some(offset),
            key: None,
            value: value.to_owned(),
            headers: Default::default(),
        }
    }

    #[test]
    fn fields_carry_their_types_presence_nulls_and_an_example() {
        let records = [
            record(
                0,
                r#"{"id": "a", "stars": 5, "tags": ["x"], "user": {"name": "Ann"}}"#,
            ),
            record(1, r#"{"id": "b", "stars": 4.5, "tags": [], "user": null}"#),
            record(2, r#"{"id": "c", "stars": 3}"#),
            record(3, "not json"),
        ];
        let schema = infer("t", &records, false);
        assert_eq!((schema.sampled, schema.not_objects), (4, 1));
        let paths: Vec<&str> = schema.fields.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["id", "stars", "tags", "tags[]", "user", "user.name"]
        );
        let stars = &schema.fields[1];
        assert_eq!(
            stars.types,
            [("integer".to_owned(), 2), ("number".to_owned(), 1)]
        );
        assert_eq!((stars.present, stars.nulls), (3, 0));
        let user = &schema.fields[4];
        assert_eq!((user.present, user.nulls), (2, 1));
        assert_eq!(user.presence, 0.5);
        assert_eq!(schema.fields[0].example, "a");
        assert!(schema.dead_letters.is_empty());
    }

    #[test]
    fn long_examples_are_cut_and_say_so() {
        let long = "é".repeat(100);
        let schema = infer(
            "t",
            &[record(0, &format!(r#"{{"text": "{long}"}}"#))],
            false,
        );
        let example = &schema.fields[0].example;
        assert_eq!(example.chars().count(), EXAMPLE_CHARS + 1);
        assert!(example.ends_with('…'));
    }

    #[test]
    fn reasons_lose_their_particulars() {
        assert_eq!(
            reason_kind("stars must be a whole number 1..=5, got 9"),
            "stars must be a whole number 1..=5"
        );
        assert_eq!(
            reason_kind("not a review JSON object: expected value at line 1 column 1"),
            "not a review JSON object"
        );
        assert_eq!(reason_kind("review_id is empty"), "review_id is empty");
    }

    #[test]
    fn dead_letters_are_grouped_by_stage_and_reason_with_the_newest_example() {
        let letter = |offset, stage: &str, reason: &str, raw: &str| {
            record(
                offset,
                &DeadLetter::new(stage, reason, raw.as_bytes(), None).to_json(),
            )
        };
        let records = [
            letter(
                0,
                "producer",
                "stars must be a whole number 1..=5, got 9",
                "{a}",
            ),
            letter(
                1,
                "producer",
                "stars must be a whole number 1..=5, got 0",
                "{b}",
            ),
            letter(
                2,
                "sentiment",
                "stars must be a whole number 1..=5, got 7",
                "{c}",
            ),
            letter(3, "producer", "review_id is empty", "{d}"),
            record(4, "garbage"),
        ];
        let groups = infer("reviews.dlq", &records, true).dead_letters;
        let summary: Vec<(&str, &str, u32)> = groups
            .iter()
            .map(|g| (g.stage.as_str(), g.reason.as_str(), g.count))
            .collect();
        assert_eq!(
            summary,
            [
                ("producer", "stars must be a whole number 1..=5", 2),
                ("producer", "review_id is empty", 1),
                ("sentiment", "stars must be a whole number 1..=5", 1),
            ]
        );
        assert_eq!(groups[0].example_raw, "{b}");
        assert_eq!(
            groups[0].example_reason,
            "stars must be a whole number 1..=5, got 0"
        );
    }
}
