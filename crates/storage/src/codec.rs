//! The one place where dynakv turns values into bytes and back.
//!
//! Every record starts with a format byte, then the bincode 2 (standard config)
//! encoding of the value. Decoding checks the format byte and caps allocation, so
//! a corrupt length prefix cannot make the process allocate gigabytes. Swapping
//! the encoding later means a new format byte and a decoder for the old one.
//!
//! Used for the on-disk records and, by the node, for node-to-node messages.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format byte of records written by this version.
pub const FORMAT_V1: u8 = 1;
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
    let mut out = vec![FORMAT_V1];
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
    if format != FORMAT_V1 {
        return Err(CodecError::Format(format));
    }
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
        assert_eq!(bytes[0], FORMAT_V1);
        assert_eq!(decode::<Object>(&bytes), Ok(o));
    }

    #[test]
    fn unknown_format_and_trailing_bytes_are_rejected() {
        let mut bytes = encode(&42u32);
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
        }
    }
}
