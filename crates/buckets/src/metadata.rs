//! The cluster-wide map of bucket types and bucket properties.
//!
//! Every entry (a type, or one bucket's overrides) is a last-writer-wins
//! register stamped with (milliseconds, node name). Merging two maps keeps,
//! per entry, the one with the higher stamp, so the merge is commutative,
//! associative and idempotent: nodes that gossip their maps in any order end
//! with the same one. A node stamps a change above every stamp it has seen
//! ([`BucketMetadata::next_stamp`]), so a change made after another was seen
//! wins whatever the clocks say. Two changes of one entry made at the same
//! time on two nodes keep one of them (the later stamp), as any register.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::key::{DEFAULT, Namespace};
use crate::props::{Props, PropsError, QuorumMode, validate_overlay};

/// When and where an entry was written: ordered by time, then node name.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// Milliseconds (the writer's clock, raised above every stamp it saw).
    pub ms: u64,
    /// The node that wrote it.
    pub node: String,
}

/// A bucket type's state, as riak-admin shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TypeStatus {
    /// Created; its buckets cannot be used until it is activated.
    Created,
    /// Usable; its `datatype` can no longer change.
    Active,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct TypeEntry {
    stamp: Stamp,
    status: TypeStatus,
    /// The type's overlay, as JSON text (the node's record codec cannot
    /// carry a JSON value).
    props: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct BucketEntry {
    stamp: Stamp,
    /// The bucket's overlay as JSON text; `None` once reset to its type's.
    props: Option<String>,
}

/// Why a change of the map was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// No such bucket type.
    #[error("no bucket type named {0:?}")]
    NoSuchType(String),
    /// The type exists already.
    #[error("bucket type {0:?} already exists")]
    TypeExists(String),
    /// The type is created but not active.
    #[error("bucket type {0:?} is not active")]
    NotActive(String),
    /// A change the type's state forbids.
    #[error("{0}")]
    Forbidden(String),
    /// A property does not validate.
    #[error(transparent)]
    Props(#[from] PropsError),
}

/// Bucket types and bucket overrides, cluster-wide.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketMetadata {
    types: BTreeMap<Vec<u8>, TypeEntry>,
    buckets: BTreeMap<(Vec<u8>, Vec<u8>), BucketEntry>,
}

fn overlay_of(json: &str) -> Map<String, Value> {
    match serde_json::from_str(json) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn text(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

impl BucketMetadata {
    /// An empty map: only the built-in `default` type.
    pub fn new() -> BucketMetadata {
        BucketMetadata::default()
    }

    /// A stamp for a change made now on `node`: `now_ms`, or just above the
    /// highest stamp in the map if that is later (a clock behind the cluster's).
    pub fn next_stamp(&self, now_ms: u64, node: &str) -> Stamp {
        let highest = self
            .types
            .values()
            .map(|t| t.stamp.ms)
            .chain(self.buckets.values().map(|b| b.stamp.ms))
            .max()
            .unwrap_or(0);
        Stamp {
            ms: now_ms.max(highest + 1),
            node: node.to_string(),
        }
    }

    /// Merges another node's map into this one; true if this one changed.
    pub fn merge(&mut self, other: &BucketMetadata) -> bool {
        let mut changed = false;
        for (name, theirs) in &other.types {
            let Some(ours) = self.types.get_mut(name) else {
                self.types.insert(name.clone(), theirs.clone());
                changed = true;
                continue;
            };
            // Properties: the later write. Activation is never undone (a
            // change made where the activation had not arrived yet keeps
            // the type active), so the state merges on its own.
            let active = ours.status == TypeStatus::Active || theirs.status == TypeStatus::Active;
            if ours.stamp < theirs.stamp {
                *ours = theirs.clone();
                changed = true;
            }
            if active && ours.status != TypeStatus::Active {
                ours.status = TypeStatus::Active;
                changed = true;
            }
        }
        for (ns, theirs) in &other.buckets {
            if self
                .buckets
                .get(ns)
                .is_none_or(|ours| ours.stamp < theirs.stamp)
            {
                self.buckets.insert(ns.clone(), theirs.clone());
                changed = true;
            }
        }
        changed
    }

    /// A digest of the whole map: equal maps have equal digests (gossip
    /// sends the map only when digests differ).
    pub fn digest(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.types.hash(&mut h);
        self.buckets.hash(&mut h);
        h.finish()
    }

    /// The state of bucket type `name` (`default` is always active).
    pub fn type_status(&self, name: &[u8]) -> Option<TypeStatus> {
        if name == DEFAULT {
            return Some(TypeStatus::Active);
        }
        self.types.get(name).map(|t| t.status)
    }

    /// Every bucket type with its state, `default` first.
    pub fn types(&self) -> Vec<(Vec<u8>, TypeStatus)> {
        let mut out = vec![(DEFAULT.to_vec(), TypeStatus::Active)];
        out.extend(
            self.types
                .iter()
                .filter(|(n, _)| n.as_slice() != DEFAULT)
                .map(|(n, t)| (n.clone(), t.status)),
        );
        out
    }

    /// Buckets with properties of their own, per type.
    pub fn buckets_with_props(&self) -> impl Iterator<Item = Namespace> + '_ {
        self.buckets
            .iter()
            .filter(|(_, b)| b.props.is_some())
            .map(|((t, b), _)| Namespace::new(t.clone(), b.clone()))
    }

    /// Creates bucket type `name` with `props` (an overlay), not yet active.
    pub fn create_type(
        &mut self,
        name: &[u8],
        props: &Value,
        max_n: usize,
        stamp: Stamp,
    ) -> Result<(), MetadataError> {
        if name == DEFAULT {
            return Err(MetadataError::TypeExists(text(name)));
        }
        if name.is_empty() || name.len() > 255 {
            return Err(MetadataError::Forbidden(
                "a bucket type name is 1 to 255 bytes".into(),
            ));
        }
        if self.types.contains_key(name) {
            return Err(MetadataError::TypeExists(text(name)));
        }
        let overlay = validate_overlay(props, max_n, true)?;
        self.types.insert(
            name.to_vec(),
            TypeEntry {
                stamp,
                status: TypeStatus::Created,
                props: Value::Object(overlay).to_string(),
            },
        );
        Ok(())
    }

    /// Activates bucket type `name` (again: no change).
    pub fn activate_type(&mut self, name: &[u8], stamp: Stamp) -> Result<(), MetadataError> {
        if name == DEFAULT {
            return Ok(());
        }
        let entry = self
            .types
            .get_mut(name)
            .ok_or_else(|| MetadataError::NoSuchType(text(name)))?;
        if entry.status != TypeStatus::Active {
            entry.status = TypeStatus::Active;
            entry.stamp = stamp;
        }
        Ok(())
    }

    /// Changes properties of bucket type `name` (those `props` names; the
    /// others keep their values). `datatype` cannot change once active.
    pub fn update_type(
        &mut self,
        name: &[u8],
        props: &Value,
        max_n: usize,
        stamp: Stamp,
    ) -> Result<(), MetadataError> {
        let overlay = validate_overlay(props, max_n, true)?;
        if name == DEFAULT {
            if overlay.contains_key("datatype") {
                return Err(MetadataError::Forbidden(
                    "the default bucket type holds no data type".into(),
                ));
            }
        } else if !self.types.contains_key(name) {
            return Err(MetadataError::NoSuchType(text(name)));
        }
        let entry = self
            .types
            .entry(name.to_vec())
            .or_insert_with(|| TypeEntry {
                stamp: Stamp::default(),
                status: TypeStatus::Active,
                props: "{}".into(),
            });
        let mut current = overlay_of(&entry.props);
        if entry.status == TypeStatus::Active
            && let Some(new) = overlay.get("datatype")
            && current.get("datatype") != Some(new)
        {
            return Err(MetadataError::Forbidden(format!(
                "the datatype of active bucket type {:?} cannot change",
                text(name)
            )));
        }
        current.extend(overlay);
        entry.props = Value::Object(current).to_string();
        entry.stamp = stamp;
        Ok(())
    }

    /// Sets properties of bucket `ns` (those `props` names, over what it set
    /// before). Its type must exist and be active.
    pub fn set_bucket(
        &mut self,
        ns: &Namespace,
        props: &Value,
        max_n: usize,
        stamp: Stamp,
    ) -> Result<(), MetadataError> {
        self.usable(&ns.bucket_type)?;
        let overlay = validate_overlay(props, max_n, false)?;
        let key = (ns.bucket_type.clone(), ns.bucket.clone());
        let mut current = self
            .buckets
            .get(&key)
            .and_then(|b| b.props.as_deref())
            .map(overlay_of)
            .unwrap_or_default();
        current.extend(overlay);
        self.buckets.insert(
            key,
            BucketEntry {
                stamp,
                props: Some(Value::Object(current).to_string()),
            },
        );
        Ok(())
    }

    /// Resets bucket `ns` to its type's properties.
    pub fn reset_bucket(&mut self, ns: &Namespace, stamp: Stamp) -> Result<(), MetadataError> {
        self.usable(&ns.bucket_type)?;
        self.buckets.insert(
            (ns.bucket_type.clone(), ns.bucket.clone()),
            BucketEntry { stamp, props: None },
        );
        Ok(())
    }

    /// Checks that a bucket of type `name` can be used.
    pub fn usable(&self, name: &[u8]) -> Result<(), MetadataError> {
        match self.type_status(name) {
            Some(TypeStatus::Active) => Ok(()),
            Some(TypeStatus::Created) => Err(MetadataError::NotActive(text(name))),
            None => Err(MetadataError::NoSuchType(text(name))),
        }
    }

    /// The properties of bucket type `name` itself.
    pub fn type_props(
        &self,
        name: &[u8],
        n: usize,
        quorum: QuorumMode,
    ) -> Result<Props, MetadataError> {
        if self.type_status(name).is_none() {
            return Err(MetadataError::NoSuchType(text(name)));
        }
        // Riak 2.x: siblings off on the default type, on for created types.
        let mut props = Props::defaults(n, name != DEFAULT, quorum);
        if let Some(t) = self.types.get(name) {
            props.apply(&overlay_of(&t.props), n);
        }
        Ok(props)
    }

    /// The properties of bucket `ns` in a cluster of N `n` whose default
    /// quorum mode is `quorum` (an error if its type is not active): Riak's defaults, its type's overlay, then its
    /// own. Bucket `default` of type `default` keeps siblings (`allow_mult`)
    /// unless set otherwise, so the native API never drops a concurrent write.
    pub fn props(
        &self,
        ns: &Namespace,
        n: usize,
        quorum: QuorumMode,
    ) -> Result<Props, MetadataError> {
        self.usable(&ns.bucket_type)?;
        let mut props = self.type_props(&ns.bucket_type, n, quorum)?;
        if ns.is_default_bucket() {
            props.allow_mult = true;
        }
        if let Some(BucketEntry { props: Some(p), .. }) = self
            .buckets
            .get(&(ns.bucket_type.clone(), ns.bucket.clone()))
        {
            props.apply(&overlay_of(p), n);
        }
        Ok(props)
    }

    /// True if any type or bucket sets `n_val` (below N or not): placement
    /// then has to look at each key's bucket.
    pub fn sets_n_val(&self) -> bool {
        self.types
            .values()
            .any(|t| overlay_of(&t.props).contains_key("n_val"))
            || self
                .buckets
                .values()
                .filter_map(|b| b.props.as_deref())
                .any(|p| overlay_of(p).contains_key("n_val"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(ms: u64, node: &str) -> Stamp {
        Stamp {
            ms,
            node: node.into(),
        }
    }

    #[test]
    fn types_are_created_then_activated() {
        let mut m = BucketMetadata::new();
        m.create_type(b"maps", &json!({"datatype": "map"}), 3, at(1, "a"))
            .expect("created");
        let ns = Namespace::new("maps", "b");
        assert_eq!(
            m.props(&ns, 3, QuorumMode::Sloppy),
            Err(MetadataError::NotActive("maps".into()))
        );
        assert_eq!(
            m.set_bucket(&ns, &json!({"n_val": 2}), 3, at(2, "a")),
            Err(MetadataError::NotActive("maps".into()))
        );
        m.activate_type(b"maps", at(3, "a")).expect("activated");
        m.set_bucket(&ns, &json!({"n_val": 2}), 3, at(4, "a"))
            .expect("set");
        let p = m.props(&ns, 3, QuorumMode::Sloppy).expect("props");
        assert_eq!(
            (p.n_val, p.allow_mult, p.datatype.as_deref()),
            (2, true, Some("map"))
        );
        assert!(matches!(
            m.update_type(b"maps", &json!({"datatype": "set"}), 3, at(5, "a")),
            Err(MetadataError::Forbidden(_))
        ));
        m.update_type(b"maps", &json!({"n_val": 1}), 3, at(6, "a"))
            .expect("other props may change");
        assert!(m.sets_n_val());
        m.reset_bucket(&ns, at(7, "a")).expect("reset");
        assert_eq!(m.props(&ns, 3, QuorumMode::Sloppy).expect("props").n_val, 1);
        assert!(matches!(
            m.props(&Namespace::new("nope", "b"), 3, QuorumMode::Sloppy),
            Err(MetadataError::NoSuchType(_))
        ));
    }

    #[test]
    fn the_default_bucket_keeps_siblings_and_other_default_buckets_do_not() {
        let m = BucketMetadata::new();
        let q = QuorumMode::Sloppy;
        assert!(
            m.props(&Namespace::default_bucket(), 3, q)
                .expect("p")
                .allow_mult
        );
        assert!(
            !m.props(&Namespace::new("default", "b"), 3, q)
                .expect("p")
                .allow_mult
        );
    }

    #[test]
    fn an_update_that_missed_the_activation_does_not_undo_it() {
        let mut a = BucketMetadata::new();
        a.create_type(b"t", &json!({}), 3, at(1, "a"))
            .expect("created");
        let mut b = a.clone();
        a.activate_type(b"t", at(2, "a")).expect("activated");
        b.update_type(b"t", &json!({"n_val": 2}), 3, at(3, "b"))
            .expect("updated");
        a.merge(&b);
        b.merge(&a);
        assert_eq!(a, b);
        assert_eq!(a.type_status(b"t"), Some(TypeStatus::Active));
        assert_eq!(
            a.type_props(b"t", 3, QuorumMode::Sloppy)
                .expect("props")
                .n_val,
            2
        );
    }

    #[test]
    fn a_change_stamped_after_what_was_seen_wins_whatever_the_clock() {
        let mut m = BucketMetadata::new();
        m.create_type(b"t", &json!({}), 3, at(1_000, "fast"))
            .expect("created");
        let s = m.next_stamp(10, "slow");
        assert!(s > at(1_000, "fast"));
    }
}
