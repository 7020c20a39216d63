//! Bucket properties with Riak's names and defaults.
//!
//! Properties travel as Riak's JSON (`{"props": {"n_val": 2, ...}}`). An
//! **overlay** is what a type or a bucket sets: a JSON object of the
//! properties it overrides, validated when it is set. [`Props`] is what a
//! bucket resolves to: the defaults, then its type's overlay, then its own.
//!
//! What each property does in dynakv:
//!
//! | property | effect |
//! |---|---|
//! | `n_val` | replicas of each key: the first `n_val` nodes of its preference list (1 to the cluster's N) |
//! | `r`, `w` | default read and write quorums (`one`, `quorum`, `all`, `default` or a count) |
//! | `pr`, `pw` | above 0: the request counts only the key's own replicas (a strict quorum) and needs at least this many |
//! | `dw` | durable writes: a write is acknowledged once written by `max(w, dw)` replicas (fsync follows `sync_writes`) |
//! | `rw` | the quorum of a delete when the request names none |
//! | `allow_mult` | `true`: concurrent writes are kept as siblings; `false`: a write replaces every version its coordinator holds, whatever context the client sent, and a read shows the newest version by timestamp |
//! | `last_write_wins`, `write_once` | as `allow_mult = false` |
//! | `notfound_ok`, `basic_quorum` | stored and reported; a replica's "not found" always counts as an answer |
//! | `datatype` | on a bucket type only, fixed once the type is active |
//! | `quorum` | dynakv's `sloppy` (fallbacks count) or `strict` |
//!
//! Any other property is stored and returned as given, as Riak does.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// A quorum property: a count or one of Riak's symbolic values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumProp {
    /// The bucket's own setting (in a request), or the node's (in a bucket).
    Default,
    /// One replica.
    One,
    /// A majority of `n_val`.
    Quorum,
    /// Every replica.
    All,
    /// Exactly this many (0 for `pr`/`pw`: none required).
    Count(u32),
}

impl QuorumProp {
    /// Parses Riak's forms: a number, or `one|quorum|all|default` (a
    /// number may come as a string, as from a query parameter).
    pub fn parse(value: &Value) -> Result<QuorumProp, String> {
        match value {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(QuorumProp::Count)
                .ok_or_else(|| format!("a quorum is a count or one|quorum|all|default, not {n}")),
            Value::String(s) => QuorumProp::parse_str(s),
            other => Err(format!(
                "a quorum is a count or one|quorum|all|default, not {other}"
            )),
        }
    }

    /// Parses `one|quorum|all|default` or a count.
    pub fn parse_str(s: &str) -> Result<QuorumProp, String> {
        match s {
            "one" => Ok(QuorumProp::One),
            "quorum" => Ok(QuorumProp::Quorum),
            "all" => Ok(QuorumProp::All),
            "default" => Ok(QuorumProp::Default),
            _ => s
                .parse()
                .map(QuorumProp::Count)
                .map_err(|_| format!("a quorum is a count or one|quorum|all|default, not {s:?}")),
        }
    }

    /// How many replicas it means for a key with `n_val` replicas, with
    /// `default` standing for [`QuorumProp::Default`]; capped at `n_val`.
    pub fn count(self, n_val: usize, default: usize) -> usize {
        let k = match self {
            QuorumProp::Default => default,
            QuorumProp::One => 1,
            QuorumProp::Quorum => n_val / 2 + 1,
            QuorumProp::All => n_val,
            QuorumProp::Count(k) => k as usize,
        };
        k.min(n_val)
    }

    /// Riak's JSON form.
    pub fn to_json(self) -> Value {
        match self {
            QuorumProp::Default => json!("default"),
            QuorumProp::One => json!("one"),
            QuorumProp::Quorum => json!("quorum"),
            QuorumProp::All => json!("all"),
            QuorumProp::Count(k) => json!(k),
        }
    }
}

/// Whether fallback nodes count toward a quorum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumMode {
    /// Fallbacks holding hints count (Dynamo's sloppy quorum).
    Sloppy,
    /// Only the key's own replicas count.
    Strict,
}

impl QuorumMode {
    /// `sloppy` or `strict`.
    pub fn parse(s: &str) -> Result<QuorumMode, String> {
        match s {
            "sloppy" => Ok(QuorumMode::Sloppy),
            "strict" => Ok(QuorumMode::Strict),
            _ => Err(format!("quorum is sloppy or strict, not {s:?}")),
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            QuorumMode::Sloppy => "sloppy",
            QuorumMode::Strict => "strict",
        }
    }
}

/// A property value that does not validate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad bucket property {name}: {reason}")]
pub struct PropsError {
    /// The property.
    pub name: String,
    /// Why.
    pub reason: String,
}

fn bad(name: &str, reason: impl Into<String>) -> PropsError {
    PropsError {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// The data types a bucket type may hold (`datatype`).
pub const DATATYPES: [&str; 5] = ["counter", "set", "gset", "map", "hll"];

/// Properties that describe a bucket rather than configure it: shown, never
/// stored from a client's overlay (clients often send back what they read).
const COMPUTED: [&str; 5] = ["name", "active", "claimant", "bucket_type", "dvv_enabled"];

/// A bucket's resolved properties.
#[derive(Clone, Debug, PartialEq)]
pub struct Props {
    /// Replicas per key.
    pub n_val: usize,
    /// Default read quorum.
    pub r: QuorumProp,
    /// Default write quorum.
    pub w: QuorumProp,
    /// Primary replicas a read needs.
    pub pr: QuorumProp,
    /// Primary replicas a write needs.
    pub pw: QuorumProp,
    /// Durable-write quorum.
    pub dw: QuorumProp,
    /// Delete quorum.
    pub rw: QuorumProp,
    /// Riak's `notfound_ok` (reported; see the module table).
    pub notfound_ok: bool,
    /// Riak's `basic_quorum` (reported; see the module table).
    pub basic_quorum: bool,
    /// Keep concurrent writes as siblings.
    pub allow_mult: bool,
    /// Writes replace what their coordinator holds.
    pub last_write_wins: bool,
    /// Writes are never updates (treated as `last_write_wins`).
    pub write_once: bool,
    /// The convergent data type of a typed bucket.
    pub datatype: Option<String>,
    /// Sloppy or strict quorums.
    pub quorum: QuorumMode,
    /// Properties stored and returned but not acted on.
    pub extra: BTreeMap<String, Value>,
}

impl Props {
    /// Riak 2.x's defaults for a bucket with `n_val` replicas: quorums
    /// `quorum`, `pr`/`pw` 0, siblings kept (`allow_mult`) as `allow_mult`
    /// says (false on the default type, true on created types).
    pub fn defaults(n_val: usize, allow_mult: bool, quorum: QuorumMode) -> Props {
        Props {
            n_val,
            r: QuorumProp::Quorum,
            w: QuorumProp::Quorum,
            pr: QuorumProp::Count(0),
            pw: QuorumProp::Count(0),
            dw: QuorumProp::Quorum,
            rw: QuorumProp::Quorum,
            notfound_ok: true,
            basic_quorum: false,
            allow_mult,
            last_write_wins: false,
            write_once: false,
            datatype: None,
            quorum,
            extra: BTreeMap::new(),
        }
    }

    /// True if a read shows one version (the newest) instead of siblings.
    pub fn resolves_siblings(&self) -> bool {
        !self.allow_mult || self.last_write_wins || self.write_once
    }

    /// True if a write replaces every version its coordinator holds: in a
    /// bucket that resolves siblings (`allow_mult = false`,
    /// `last_write_wins`, `write_once`), as Riak's vnode does, so blind
    /// writes never pile up siblings nobody sees. Only writes coordinated
    /// at the same moment by different replicas meet as siblings; a read
    /// shows the newest, and the next write replaces them.
    pub fn replaces_on_write(&self) -> bool {
        self.resolves_siblings()
    }

    /// Applies a validated overlay (see [`validate_overlay`]); `max_n` caps
    /// `n_val` (a cluster whose N shrank since).
    pub fn apply(&mut self, overlay: &Map<String, Value>, max_n: usize) {
        for (name, value) in overlay {
            // Validated when set; a value that no longer parses is skipped.
            let _ = self.set(name, value, max_n);
        }
    }

    fn set(&mut self, name: &str, value: &Value, max_n: usize) -> Result<(), PropsError> {
        let quorum = |v: &Value| QuorumProp::parse(v).map_err(|e| bad(name, e));
        let flag = |v: &Value| match v {
            Value::Bool(b) => Ok(*b),
            Value::String(s) if s == "true" => Ok(true),
            Value::String(s) if s == "false" => Ok(false),
            _ => Err(bad(name, format!("must be true or false, not {v}"))),
        };
        match name {
            "n_val" => {
                let n = value
                    .as_u64()
                    .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| bad(name, format!("must be a number, not {value}")))?;
                if n == 0 || n as usize > max_n {
                    return Err(bad(
                        name,
                        format!("must be 1 to the cluster's n ({max_n}), not {n}"),
                    ));
                }
                self.n_val = n as usize;
            }
            "r" => self.r = quorum(value)?,
            "w" => self.w = quorum(value)?,
            "pr" => self.pr = quorum(value)?,
            "pw" => self.pw = quorum(value)?,
            "dw" => self.dw = quorum(value)?,
            "rw" => self.rw = quorum(value)?,
            "notfound_ok" => self.notfound_ok = flag(value)?,
            "basic_quorum" => self.basic_quorum = flag(value)?,
            "allow_mult" => self.allow_mult = flag(value)?,
            "last_write_wins" => self.last_write_wins = flag(value)?,
            "write_once" => self.write_once = flag(value)?,
            "datatype" => {
                let t = value
                    .as_str()
                    .filter(|t| DATATYPES.contains(t))
                    .ok_or_else(|| {
                        bad(name, format!("must be one of {DATATYPES:?}, not {value}"))
                    })?;
                self.datatype = Some(t.to_string());
            }
            "quorum" => {
                let mode = value
                    .as_str()
                    .ok_or_else(|| bad(name, "must be sloppy or strict"))
                    .and_then(|s| QuorumMode::parse(s).map_err(|e| bad(name, e)))?;
                self.quorum = mode;
            }
            "consistent" if value == &Value::Bool(true) => {
                return Err(bad(name, "strongly consistent buckets are not supported"));
            }
            _ => {
                self.extra.insert(name.to_string(), value.clone());
            }
        }
        Ok(())
    }

    /// Riak's JSON form of the properties of bucket `name` (`{"name": …,
    /// "n_val": …, …}`, the object inside `{"props": …}`).
    pub fn to_json(&self, name: &str) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        let fixed = json!({
            "name": name,
            "n_val": self.n_val,
            "r": self.r.to_json(),
            "w": self.w.to_json(),
            "pr": self.pr.to_json(),
            "pw": self.pw.to_json(),
            "dw": self.dw.to_json(),
            "rw": self.rw.to_json(),
            "notfound_ok": self.notfound_ok,
            "basic_quorum": self.basic_quorum,
            "allow_mult": self.allow_mult,
            "last_write_wins": self.last_write_wins,
            "write_once": self.write_once,
            "dvv_enabled": true,
            "quorum": self.quorum.name(),
        });
        if let Value::Object(fixed) = fixed {
            m.extend(fixed);
        }
        for (k, v) in [
            ("young_vclock", json!(20)),
            ("old_vclock", json!(86400)),
            ("small_vclock", json!(50)),
            ("big_vclock", json!(50)),
            ("precommit", json!([])),
            ("postcommit", json!([])),
            (
                "chash_keyfun",
                json!({"mod": "riak_core_util", "fun": "chash_std_keyfun"}),
            ),
            (
                "linkfun",
                json!({"mod": "riak_kv_wm_link_walker", "fun": "mapreduce_linkfun"}),
            ),
        ] {
            m.entry(k).or_insert(v);
        }
        if let Some(t) = &self.datatype {
            m.insert("datatype".into(), json!(t));
        }
        Value::Object(m)
    }
}

/// Checks an overlay a client sent (the object inside `{"props": …}`) and
/// returns it with computed properties (`name`, `active`, …) dropped.
/// `max_n` is the cluster's N; `on_type` whether it is a bucket type's.
pub fn validate_overlay(
    overlay: &Value,
    max_n: usize,
    on_type: bool,
) -> Result<Map<String, Value>, PropsError> {
    let Value::Object(map) = overlay else {
        return Err(bad(
            "props",
            format!("must be a JSON object, not {overlay}"),
        ));
    };
    let mut probe = Props::defaults(max_n, true, QuorumMode::Sloppy);
    let mut kept = Map::new();
    for (name, value) in map {
        if COMPUTED.contains(&name.as_str()) {
            continue;
        }
        if name == "datatype" && !on_type {
            return Err(bad(name, "is a property of a bucket type, not of a bucket"));
        }
        probe.set(name, value, max_n)?;
        kept.insert(name.clone(), value.clone());
    }
    Ok(kept)
}

/// Reads `{"props": {...}}` (or a bare object of properties) from a request body.
pub fn overlay_from_body(body: &[u8]) -> Result<Value, PropsError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| bad("props", format!("the body is not JSON: {e}")))?;
    match value {
        Value::Object(mut m) => match m.remove("props") {
            Some(props) => Ok(props),
            None => Ok(Value::Object(m)),
        },
        other => Err(bad("props", format!("must be a JSON object, not {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlays_validate_with_riaks_names() {
        let ok = validate_overlay(
            &json!({"n_val": 2, "r": "one", "w": 3, "allow_mult": true, "name": "b", "precommit": []}),
            3,
            false,
        )
        .expect("valid");
        assert!(!ok.contains_key("name"));
        assert!(ok.contains_key("precommit"));
        for bad in [
            json!({"n_val": 0}),
            json!({"n_val": 4}),
            json!({"r": "most"}),
            json!({"allow_mult": 3}),
            json!({"quorum": "loose"}),
            json!({"consistent": true}),
            json!({"datatype": "counter"}),
            json!([1]),
        ] {
            assert!(validate_overlay(&bad, 3, false).is_err(), "{bad}");
        }
        assert!(validate_overlay(&json!({"datatype": "counter"}), 3, true).is_ok());
        assert!(validate_overlay(&json!({"datatype": "list"}), 3, true).is_err());
    }

    #[test]
    fn overlays_apply_in_order() {
        let mut p = Props::defaults(3, false, QuorumMode::Sloppy);
        let t = validate_overlay(&json!({"n_val": 2, "allow_mult": true}), 3, true).expect("valid");
        let b = validate_overlay(&json!({"allow_mult": false, "r": 1}), 3, false).expect("valid");
        p.apply(&t, 3);
        p.apply(&b, 3);
        assert_eq!(p.n_val, 2);
        assert!(!p.allow_mult);
        assert_eq!(p.r, QuorumProp::Count(1));
        assert_eq!(p.to_json("b")["n_val"], json!(2));
        // A cluster whose N shrank caps nothing silently: the value is skipped.
        let mut small = Props::defaults(1, false, QuorumMode::Sloppy);
        small.apply(&t, 1);
        assert_eq!(small.n_val, 1);
    }

    #[test]
    fn quorum_counts() {
        assert_eq!(QuorumProp::Quorum.count(3, 9), 2);
        assert_eq!(QuorumProp::All.count(2, 9), 2);
        assert_eq!(QuorumProp::Default.count(3, 2), 2);
        assert_eq!(QuorumProp::Count(5).count(3, 2), 3);
        assert_eq!(QuorumProp::Count(0).count(3, 2), 0);
    }
}
