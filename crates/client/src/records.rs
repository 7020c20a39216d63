//! The record format of `dynakv load` and `dynakv export`: JSON Lines, and
//! the binary batches `load --sst` sends ([`IngestBatch`]).
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
    /// The bucket type and bucket of an exported key outside the default
    /// bucket (`"type"` and `"bucket"` in the JSON); `None` for the native
    /// API's bucket, the only one `load` writes to.
    pub bucket: Option<(Vec<u8>, Vec<u8>)>,
    /// The key's bytes (within its bucket).
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
        let bucket = match (name(obj, "type")?, name(obj, "bucket")?) {
            (None, None) => None,
            (t, Some(b)) => {
                let t = t.unwrap_or_else(|| b"default".to_vec());
                // Bucket `default` of type `default` is the native API's.
                (t != b"default" || b != b"default").then_some((t, b))
            }
            (Some(_), None) => return Err("\"type\" without \"bucket\"".into()),
        };
        Ok(Record {
            bucket,
            key,
            siblings,
        })
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
        if let Some((t, b)) = &self.bucket {
            for (field, bytes) in [("type", t), ("bucket", b)] {
                match std::str::from_utf8(bytes) {
                    Ok(s) => v[field] = json!(s),
                    Err(_) => v[format!("{field}_base64")] = json!(STANDARD.encode(bytes)),
                }
            }
        }
        v["siblings"] = Value::Array(siblings);
        v.to_string()
    }
}

/// A bucket or type name: `"<field>"` (text) or `"<field>_base64"`.
fn name(obj: &serde_json::Map<String, Value>, field: &str) -> Result<Option<Vec<u8>>, String> {
    match (obj.get(field), obj.get(&format!("{field}_base64"))) {
        (None, None) => Ok(None),
        (Some(Value::String(s)), None) if !s.is_empty() => Ok(Some(s.as_bytes().to_vec())),
        (None, Some(Value::String(s))) => match STANDARD.decode(s) {
            Ok(b) if !b.is_empty() => Ok(Some(b)),
            Ok(_) => Err(format!("{field}_base64 is empty")),
            Err(e) => Err(format!("{field}_base64 is not base64: {e}")),
        },
        _ => Err(format!(
            "give one non-empty string \"{field}\" or \"{field}_base64\""
        )),
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

/// The content type of an [`IngestBatch`] body.
pub const INGEST_BATCH_TYPE: &str = "application/x-dynakv-records";

/// Records in the compact binary form `POST /admin/ingest` takes (`dynakv
/// load --sst`): JSON and base64 cost more than the ingestion itself. Each
/// record is its key (`u32` length, little endian, then the bytes), its
/// value count (`u32`), then each value (`u32` length and bytes) with its
/// content type (`u16` length and UTF-8 bytes).
#[derive(Clone, Debug, Default)]
pub struct IngestBatch {
    bytes: Vec<u8>,
    records: usize,
}

impl IngestBatch {
    /// An empty batch.
    pub fn new() -> IngestBatch {
        IngestBatch::default()
    }

    /// An empty batch with room for `bytes` of encoded records.
    pub fn with_capacity(bytes: usize) -> IngestBatch {
        IngestBatch {
            bytes: Vec::with_capacity(bytes),
            records: 0,
        }
    }

    /// Appends one record.
    pub fn push(&mut self, record: &Record) {
        let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
        self.bytes.extend_from_slice(&len32(record.key.len()));
        self.bytes.extend_from_slice(&record.key);
        self.bytes.extend_from_slice(&len32(record.siblings.len()));
        for s in &record.siblings {
            self.bytes.extend_from_slice(&len32(s.value.len()));
            self.bytes.extend_from_slice(&s.value);
            let ct = s.content_type.as_bytes();
            let ct = &ct[..ct.len().min(usize::from(u16::MAX))];
            self.bytes
                .extend_from_slice(&(ct.len() as u16).to_le_bytes());
            self.bytes.extend_from_slice(ct);
        }
        self.records += 1;
    }

    /// Appends every record of `other`.
    pub fn append(&mut self, other: &IngestBatch) {
        self.bytes.extend_from_slice(&other.bytes);
        self.records += other.records;
    }

    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.records
    }

    /// True if the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The encoded size.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// The encoded records.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded records, consuming the batch.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// One record of an encoded [`IngestBatch`], borrowing its bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Each value and its content type.
    pub values: Vec<(&'a [u8], &'a str)>,
}

/// Decodes an [`IngestBatch`]'s bytes, at most `max_records` records; the
/// error says where they stop making sense. Never panics, and allocates in
/// proportion to what the bytes really hold, whatever they claim.
pub fn decode_ingest_batch(
    mut bytes: &[u8],
    max_records: usize,
) -> Result<Vec<RawRecord<'_>>, String> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], String> {
        if bytes.len() < n {
            return Err(format!("truncated in {what}"));
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    fn len32(bytes: &mut &[u8], what: &str) -> Result<usize, String> {
        let b = take(bytes, 4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let n = records.len() + 1;
        if n > max_records {
            return Err(format!("more than {max_records} records"));
        }
        let key_len = len32(&mut bytes, "a key length")?;
        let key = take(&mut bytes, key_len, "a key")?;
        let count = len32(&mut bytes, "a value count")?;
        // Each value takes six bytes at least: a count beyond that is a lie.
        if count > bytes.len() / 6 {
            return Err(format!("record {n}: {count} values cannot fit"));
        }
        let mut values = Vec::with_capacity(count.min(16));
        for _ in 0..count {
            let value_len = len32(&mut bytes, "a value length")?;
            let value = take(&mut bytes, value_len, "a value")?;
            let ct = take(&mut bytes, 2, "a content type length")?;
            let ct_len = usize::from(u16::from_le_bytes([ct[0], ct[1]]));
            let ct = std::str::from_utf8(take(&mut bytes, ct_len, "a content type")?)
                .map_err(|_| format!("record {n}: a content type is not UTF-8"))?;
            values.push((value, ct));
        }
        records.push(RawRecord { key, values });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ingest_batch_round_trips_and_rejects_broken_bytes() {
        let records = [
            Record {
                bucket: None,
                key: b"k".to_vec(),
                siblings: vec![Sibling::new("v", "text/plain")],
            },
            Record {
                bucket: None,
                key: vec![0xff, 0],
                siblings: vec![
                    Sibling::new(vec![0u8, 1, 2], DEFAULT_CONTENT_TYPE),
                    Sibling::new(Vec::<u8>::new(), "a/b"),
                ],
            },
        ];
        let mut batch = IngestBatch::new();
        for r in &records {
            batch.push(r);
        }
        let mut both = IngestBatch::new();
        both.append(&batch);
        assert_eq!(both.len(), 2);
        let decoded = decode_ingest_batch(both.as_bytes(), 10).expect("decodes");
        assert_eq!(decoded.len(), 2);
        for (raw, r) in decoded.iter().zip(&records) {
            assert_eq!(raw.key, r.key.as_slice());
            let values: Vec<(&[u8], &str)> = r
                .siblings
                .iter()
                .map(|s| (s.value.as_ref(), s.content_type.as_str()))
                .collect();
            assert_eq!(raw.values, values);
        }
        let bytes = both.as_bytes();
        let mut first = IngestBatch::new();
        first.push(&records[0]);
        for cut in 1..bytes.len() {
            let decoded = decode_ingest_batch(&bytes[..cut], 10);
            if cut == first.size() {
                assert_eq!(decoded.expect("one whole record").len(), 1);
            } else {
                assert!(decoded.is_err(), "cut at {cut}");
            }
        }
        let mut lying = 1u32.to_le_bytes().to_vec();
        lying.extend_from_slice(b"k");
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_ingest_batch(&lying, 10).is_err());
        assert!(decode_ingest_batch(&[], 10).expect("empty").is_empty());
        assert!(
            decode_ingest_batch(both.as_bytes(), 1).is_err(),
            "over the record limit"
        );
    }

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
