//! The one place where dynakv turns values into bytes and back.
//!
//! Every record starts with a format byte, then the bincode 2 (standard config)
//! encoding of the value. Decoding checks the format byte and caps allocation, so
//! a corrupt length prefix cannot make the process allocate gigabytes. Swapping
//! the encoding later means a new format byte and a decoder for the old one.
//!
//! Used for the on-disk records and, by the node, for node-to-node messages.

use dynakv_versioning::{DvvSet, Object, Version};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format byte of records written before versions carried metadata
/// (dynakv before namespaces): objects in it are read through
/// [`decode_object`]; other records have the same layout in both formats.
pub const FORMAT_V1: u8 = 1;
/// The format byte of records written by this version.
pub const FORMAT_V2: u8 = 2;
/// No record decodes into more than this many bytes of allocation.
const DECODE_LIMIT: usize = 256 << 20;

/// Why a record failed to decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The record is empty.
    #[error("empty record")]
    Empty,
    /// The record was written by an unknown format.
    #[error("unknown format byte {0}")]
    Format(u8),
    /// The body does not decode, or has bytes left over.
    #[error("undecodable record: {0}")]
    Body(String),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes a value as a record: format byte, then the body.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_V2];
    // Encoding into a Vec cannot fail for our plain data types: a failure would be
    // a bug (an unsupported serde construct), so it is an invariant, not input.
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("dynakv record types are always encodable");
    out.extend_from_slice(&body);
    out
}

/// Decodes a record written by [`encode`]; never panics on any input.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&format, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if format != FORMAT_V2 {
        return Err(CodecError::Format(format));
    }
    decode_body(body)
}

/// Decodes a record whose layout did not change between [`FORMAT_V1`] and
/// [`FORMAT_V2`] (metadata such as the identity, the member table and the
/// ring), written by this version or the one before.
pub fn decode_unchanged<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&format, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if format != FORMAT_V1 && format != FORMAT_V2 {
        return Err(CodecError::Format(format));
    }
    decode_body(body)
}

/// Decodes a stored object, in the current format or the one before
/// namespaces (whose versions had no metadata).
pub fn decode_object(bytes: &[u8]) -> Result<Object, CodecError> {
    match bytes.first() {
        Some(&FORMAT_V1) => {
            Ok(decode_body::<DvvSet<VersionV1>>(&bytes[1..])?.map_values(Version::from))
        }
        _ => decode(bytes),
    }
}

/// True if `bytes` is a record in the format before this one: a merge that
/// changes nothing still writes the object again, so two replicas holding the
/// same object hold the same bytes (anti-entropy compares digests of bytes).
pub fn is_legacy(bytes: &[u8]) -> bool {
    bytes.first() == Some(&FORMAT_V1)
}

/// A version as [`FORMAT_V1`] stored it.
#[derive(Clone, serde::Deserialize, serde::Serialize)]
pub(crate) struct VersionV1 {
    pub(crate) data: Option<bytes::Bytes>,
    pub(crate) content_type: String,
    pub(crate) timestamp_ms: u64,
}

impl From<VersionV1> for Version {
    fn from(v: VersionV1) -> Version {
        Version {
            data: v.data,
            content_type: v.content_type,
            timestamp_ms: v.timestamp_ms,
            meta: None,
        }
    }
}

fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| CodecError::Body(e.to_string()))?;
    if used != body.len() {
        return Err(CodecError::Body(format!(
            "{} trailing bytes",
            body.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynakv_versioning::{ActorId, Object, Version, VersionVector};
    use proptest::prelude::*;

    /// The serde layout of a DVVSet, without its invariants.
    #[derive(serde::Serialize)]
    struct LooseEntry {
        counter: u64,
        values: Vec<Version>,
    }
    #[derive(serde::Serialize)]
    struct LooseSet {
        entries: std::collections::BTreeMap<ActorId, LooseEntry>,
    }

    #[test]
    fn objects_that_break_the_clock_invariants_are_errors_never_data() {
        for (counter, values) in [(0, 1), (1, 2), (dynakv_versioning::MAX_COUNTER + 1, 0)] {
            let loose = LooseSet {
                entries: [(
                    ActorId(1),
                    LooseEntry {
                        counter,
                        values: vec![Version::value(&b"x"[..], "", 1); values],
                    },
                )]
                .into(),
            };
            assert!(
                decode::<Object>(&encode(&loose)).is_err(),
                "counter {counter} with {values} values decoded"
            );
        }
        let fine = LooseSet {
            entries: [(
                ActorId(1),
                LooseEntry {
                    counter: 3,
                    values: vec![Version::value(&b"x"[..], "", 1)],
                },
            )]
            .into(),
        };
        assert!(decode::<Object>(&encode(&fine)).is_ok());
    }

    #[test]
    fn object_round_trips() {
        let mut o = Object::new();
        o.update(
            &VersionVector::new(),
            ActorId(7),
            Version::value(&b"\x00\xff"[..], "application/x", 5),
        );
        o.update(&VersionVector::new(), ActorId(8), Version::tombstone(6));
        let bytes = encode(&o);
        assert_eq!(bytes[0], FORMAT_V2);
        assert_eq!(decode::<Object>(&bytes), Ok(o.clone()));
        assert_eq!(decode_object(&bytes), Ok(o));
    }

    #[test]
    fn objects_of_the_format_before_metadata_decode() {
        let mut old: DvvSet<VersionV1> = DvvSet::new();
        old.update(
            &VersionVector::new(),
            ActorId(3),
            VersionV1 {
                data: Some(bytes::Bytes::from_static(b"v")),
                content_type: "text/plain".into(),
                timestamp_ms: 9,
            },
        );
        old.update(
            &VersionVector::new(),
            ActorId(4),
            VersionV1 {
                data: None,
                content_type: String::new(),
                timestamp_ms: 10,
            },
        );
        let mut bytes = encode(&old);
        bytes[0] = FORMAT_V1;
        assert!(is_legacy(&bytes));
        let o = decode_object(&bytes).expect("a v1 object decodes");
        let mut want = Object::new();
        want.update(
            &VersionVector::new(),
            ActorId(3),
            Version::value(&b"v"[..], "text/plain", 9),
        );
        want.update(&VersionVector::new(), ActorId(4), Version::tombstone(10));
        assert_eq!(o, want);
        // Read as the current format, the old bytes are an error, never data.
        assert!(decode::<Object>(&bytes).is_err());
    }

    #[test]
    fn unknown_format_and_trailing_bytes_are_rejected() {
        let mut bytes = encode(&42u32);
        bytes[0] = 9;
        assert_eq!(decode_unchanged::<u32>(&bytes), Err(CodecError::Format(9)));
        bytes[0] = FORMAT_V1;
        assert_eq!(decode_unchanged::<u32>(&bytes), Ok(42));
        bytes[0] = 9;
        assert_eq!(decode::<u32>(&bytes), Err(CodecError::Format(9)));
        let mut bytes = encode(&42u32);
        bytes.push(0);
        assert!(matches!(decode::<u32>(&bytes), Err(CodecError::Body(_))));
        assert_eq!(decode::<u32>(&[]), Err(CodecError::Empty));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<Object>(&bytes);
            let _ = decode_object(&bytes);
        }
    }
}
