//! Riak's HTTP paths, parsed from the raw (percent-encoded) path, so bucket
//! names and keys may hold any byte, `/` included when encoded.

use dynakv_buckets::{DEFAULT, Namespace};
use percent_encoding::percent_decode_str;

use super::ApiError;

/// What a Riak HTTP path addresses.
#[derive(Debug, PartialEq)]
pub enum Target {
    /// `/buckets`, `/types/T/buckets`: the buckets of a type.
    Buckets {
        /// The type.
        bucket_type: Vec<u8>,
    },
    /// `/types/T/props`: a type's own properties.
    TypeProps {
        /// The type.
        bucket_type: Vec<u8>,
    },
    /// `/buckets/B/props`: a bucket's properties.
    Props {
        /// The bucket.
        ns: Namespace,
    },
    /// `/buckets/B/keys`, and legacy `/riak/B`: the bucket's keys (and,
    /// legacy, its properties), or a POST that makes a key.
    Keys {
        /// The bucket.
        ns: Namespace,
    },
    /// `/buckets/B/counters/K`: a Riak 1.4 counter.
    Counter {
        /// The bucket.
        ns: Namespace,
        /// The key.
        key: Vec<u8>,
    },
    /// `/buckets/B/keys/K/preflist`: where a key lives.
    Preflist {
        /// The bucket.
        ns: Namespace,
        /// The key.
        key: Vec<u8>,
    },
    /// `/buckets/B/keys/K`, legacy `/riak/B/K`: an object.
    Object {
        /// The bucket.
        ns: Namespace,
        /// The key.
        key: Vec<u8>,
    },
}

fn segment(raw: &str) -> Vec<u8> {
    percent_decode_str(raw).collect()
}

fn name(raw: &str, what: &str) -> Result<Vec<u8>, ApiError> {
    let n = segment(raw);
    if n.is_empty() || n.len() > 255 {
        return Err(ApiError::bad_request(format!(
            "a {what} name is 1 to 255 bytes"
        )));
    }
    Ok(n)
}

impl Target {
    /// Parses a path under `/buckets`, `/types` or `/riak`.
    pub fn parse(path: &str) -> Result<Target, ApiError> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let unknown = || ApiError::not_found(format!("no Riak resource at {path}"));
        let (bucket_type, rest): (Vec<u8>, &[&str]) = match parts.as_slice() {
            ["types", t, rest @ ..] => (name(t, "bucket type")?, rest),
            ["riak", rest @ ..] => {
                return match rest {
                    [b] => Ok(Target::Keys {
                        ns: Namespace::new(DEFAULT, name(b, "bucket")?),
                    }),
                    [b, k] => Ok(Target::Object {
                        ns: Namespace::new(DEFAULT, name(b, "bucket")?),
                        key: key(k)?,
                    }),
                    _ => Err(unknown()),
                };
            }
            rest => (DEFAULT.to_vec(), rest),
        };
        match rest {
            ["props"] if !parts.starts_with(&["buckets"]) => Ok(Target::TypeProps { bucket_type }),
            ["buckets"] => Ok(Target::Buckets { bucket_type }),
            ["buckets", b, tail @ ..] => {
                let ns = Namespace::new(bucket_type, name(b, "bucket")?);
                match tail {
                    ["props"] => Ok(Target::Props { ns }),
                    ["keys"] | [] => Ok(Target::Keys { ns }),
                    ["keys", k] => Ok(Target::Object { ns, key: key(k)? }),
                    ["keys", k, "preflist"] => Ok(Target::Preflist { ns, key: key(k)? }),
                    ["counters", k] => Ok(Target::Counter { ns, key: key(k)? }),
                    _ => Err(unknown()),
                }
            }
            _ => Err(unknown()),
        }
    }
}

fn key(raw: &str) -> Result<Vec<u8>, ApiError> {
    let k = segment(raw);
    if k.is_empty() || k.len() > super::super::kv::MAX_KEY_BYTES {
        return Err(ApiError::bad_request(format!(
            "a key is 1 to {} bytes",
            super::super::kv::MAX_KEY_BYTES
        )));
    }
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        let ns = |t: &str, b: &str| Namespace::new(t, b);
        assert_eq!(
            Target::parse("/types/maps/buckets/b%2Fx/keys/k%20").expect("ok"),
            Target::Object {
                ns: ns("maps", "b/x"),
                key: b"k ".to_vec()
            }
        );
        assert_eq!(
            Target::parse("/buckets/b/keys/k").expect("ok"),
            Target::Object {
                ns: ns("default", "b"),
                key: b"k".to_vec()
            }
        );
        assert_eq!(
            Target::parse("/riak/b/k").expect("ok"),
            Target::Object {
                ns: ns("default", "b"),
                key: b"k".to_vec()
            }
        );
        assert_eq!(
            Target::parse("/buckets/b/props").expect("ok"),
            Target::Props {
                ns: ns("default", "b")
            }
        );
        assert_eq!(
            Target::parse("/types/t/props").expect("ok"),
            Target::TypeProps {
                bucket_type: b"t".to_vec()
            }
        );
        assert_eq!(
            Target::parse("/types/t/buckets").expect("ok"),
            Target::Buckets {
                bucket_type: b"t".to_vec()
            }
        );
        assert_eq!(
            Target::parse("/buckets").expect("ok"),
            Target::Buckets {
                bucket_type: b"default".to_vec()
            }
        );
        assert_eq!(
            Target::parse("/buckets/b/keys").expect("ok"),
            Target::Keys {
                ns: ns("default", "b")
            }
        );
        assert!(Target::parse("/buckets/b/keys/").is_ok());
        assert!(Target::parse("/buckets/b/other/k").is_err());
        assert!(Target::parse("/types//buckets/b/keys/k").is_err());
    }
}
