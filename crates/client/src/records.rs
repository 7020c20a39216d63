//! The record format of `dynakv load` and `dynakv export`: JSON Lines.
//!
//! A line is one key with its values. `load` accepts
//! `{"key": "...", "value": "..."}` (text), `"value_base64"` instead of
//! `"value"` (binary), an optional `"content_type"`, and the export form
//! `{"key": "...", "siblings": [{"value_base64": "...", "content_type": "..."}]}`;
//! a key that is not UTF-8 is written as `"key_base64"`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::Sibling;

/// Longest key the store accepts (SPEC §2).
pub const MAX_KEY_BYTES: usize = 1024;

/// The content type of a loaded value that names none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// One key and the values to store (or that are stored) under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The key's bytes.
    pub key: Vec<u8>,
    /// Its values: one for a loaded record, every live sibling for an
    /// exported one.
    pub siblings: Vec<Sibling>,
}

impl Record {
    /// Parses one JSON line (see the module docs); the error says what is
    /// wrong with it.
    pub fn from_json(line: &str) -> Result<Record, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let obj = v.as_object().ok_or("not a JSON object")?;
        let key = match (obj.get("key"), obj.get("key_base64")) {
            (Some(Value::String(k)), None) => k.as_bytes().to_vec(),
            (None, Some(Value::String(k))) => STANDARD
                .decode(k)
                .map_err(|e| format!("key_base64 is not base64: {e}"))?,
            (None, None) => return Err("no \"key\"".into()),
            _ => return Err("give one string \"key\" or \"key_base64\"".into()),
        };
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(format!(
                "a key is 1-{MAX_KEY_BYTES} bytes, not {}",
                key.len()
            ));
        }
        let siblings = match obj.get("siblings") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|s| sibling(s.as_object().ok_or("a sibling is not an object")?))
                .collect::<Result<Vec<_>, String>>()?,
            Some(_) => return Err("\"siblings\" is not an array".into()),
            None => vec![sibling(obj)?],
        };
        if siblings.is_empty() {
            return Err("no values".into());
        }
        Ok(Record { key, siblings })
    }

    /// The record as one JSON line (without the newline), in the export form.
    pub fn to_json(&self) -> String {
        let siblings: Vec<Value> = self
            .siblings
            .iter()
            .map(|s| json!({"value_base64": STANDARD.encode(&s.value), "content_type": s.content_type}))
            .collect();
        let mut v = match std::str::from_utf8(&self.key) {
            Ok(k) => json!({ "key": k }),
            Err(_) => json!({ "key_base64": STANDARD.encode(&self.key) }),
        };
        v["siblings"] = Value::Array(siblings);
        v.to_string()
    }
}

fn sibling(obj: &serde_json::Map<String, Value>) -> Result<Sibling, String> {
    let value = match (obj.get("value"), obj.get("value_base64")) {
        (Some(Value::String(v)), None) => v.as_bytes().to_vec(),
        (None, Some(Value::String(v))) => STANDARD
            .decode(v)
            .map_err(|e| format!("value_base64 is not base64: {e}"))?,
        (None, None) => return Err("no \"value\" or \"value_base64\"".into()),
        _ => return Err("give one string \"value\" or \"value_base64\"".into()),
    };
    let content_type = match obj.get("content_type") {
        None | Some(Value::Null) => DEFAULT_CONTENT_TYPE.to_string(),
        Some(Value::String(c)) if !c.is_empty() => c.clone(),
        Some(_) => return Err("\"content_type\" is not a non-empty string".into()),
    };
    Ok(Sibling::new(value, content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_forms_parse_and_the_export_form_round_trips() {
        let text = Record::from_json(r#"{"key": "k", "value": "v", "content_type": "text/plain"}"#)
            .expect("text");
        assert_eq!(text.siblings, [Sibling::new("v", "text/plain")]);
        let binary =
            Record::from_json(r#"{"key_base64": "/w==", "value_base64": "AAE="}"#).expect("binary");
        assert_eq!(binary.key, [0xff]);
        assert_eq!(
            binary.siblings,
            [Sibling::new(vec![0u8, 1], DEFAULT_CONTENT_TYPE)]
        );
        for r in [text, binary] {
            assert_eq!(Record::from_json(&r.to_json()).expect("round trip"), r);
        }
        for bad in [
            "not json",
            "[]",
            r#"{"value": "v"}"#,
            r#"{"key": "", "value": "v"}"#,
            r#"{"key": "k"}"#,
            r#"{"key": "k", "value_base64": "!!"}"#,
            r#"{"key": "k", "siblings": []}"#,
            r#"{"key": "k", "value": 3}"#,
        ] {
            assert!(Record::from_json(bad).is_err(), "{bad}");
        }
        let long = format!(
            r#"{{"key": "{}", "value": "v"}}"#,
            "k".repeat(MAX_KEY_BYTES + 1)
        );
        assert!(Record::from_json(&long).is_err(), "a key over 1024 bytes");
    }
}
