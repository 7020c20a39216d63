//! Users and grants, modelled on Riak's security: cluster metadata stored
//! like bucket types (last writer wins per entry, persisted, pushed when set
//! and compared by digest every gossip round), and the checks every request
//! passes once security is enabled.
//!
//! * A user has a password, kept as an Argon2id hash (PHC string); a
//!   verified password is remembered (by its SHA-256) so a request does not
//!   pay Argon2's cost every time.
//! * A grant gives a user permissions (`read`, `write`, `delete`, `list`,
//!   `admin`) on a bucket type, or on one bucket of it. `any` as the type
//!   covers every type.
//! * Enabled, every endpoint but `/health` needs a credential: HTTP Basic
//!   (over TLS: security cannot be enabled without it), a bearer token equal
//!   to the admin token (tools), or Riak PB's `RpbAuthReq` after
//!   `RpbStartTls`. The credential is checked before a request's body is
//!   read.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use dynakv_buckets::Stamp;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::server::clock::now_ms;

/// The meta record holding the security metadata.
pub const META_SECURITY: &str = "security";

/// One permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Perm {
    /// Read objects.
    Read,
    /// Write objects.
    Write,
    /// Delete objects.
    Delete,
    /// List keys and buckets.
    List,
    /// Everything an operator does: `/admin/*`, bucket properties, metrics.
    Admin,
}

impl Perm {
    const ALL: [Perm; 5] = [
        Perm::Read,
        Perm::Write,
        Perm::Delete,
        Perm::List,
        Perm::Admin,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Its name, as grants spell it.
    pub fn name(self) -> &'static str {
        match self {
            Perm::Read => "read",
            Perm::Write => "write",
            Perm::Delete => "delete",
            Perm::List => "list",
            Perm::Admin => "admin",
        }
    }

    /// Parses `read,write` (Riak's `riak_kv.get,riak_kv.put` names too).
    pub fn parse_set(text: &str) -> Result<u8, String> {
        let mut bits = 0;
        for p in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let perm = match p {
                "read" | "riak_kv.get" => Perm::Read,
                "write" | "riak_kv.put" => Perm::Write,
                "delete" | "riak_kv.delete" => Perm::Delete,
                "list" | "riak_kv.list_keys" | "riak_kv.list_buckets" => Perm::List,
                "admin" | "riak_core.set_bucket" | "riak_core.get_bucket" => Perm::Admin,
                other => {
                    return Err(format!(
                        "unknown permission {other:?}: give read, write, delete, list or admin"
                    ));
                }
            };
            bits |= perm.bit();
        }
        if bits == 0 {
            return Err("no permission given".into());
        }
        Ok(bits)
    }

    /// The names of the permissions in `bits`.
    pub fn names(bits: u8) -> Vec<&'static str> {
        Perm::ALL
            .iter()
            .filter(|p| bits & p.bit() != 0)
            .map(|p| p.name())
            .collect()
    }
}

/// What a grant covers: a user, a bucket type (`any`: every type) and a
/// bucket (empty: every bucket of the type).
pub type GrantKey = (String, String, String);

/// The cluster's users and grants, and whether security is on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecurityMetadata {
    enabled: (bool, Option<Stamp>),
    /// Password hashes (PHC strings); `None`: the user was deleted.
    users: BTreeMap<String, (Option<String>, Stamp)>,
    /// Permission bits; 0: revoked.
    grants: BTreeMap<GrantKey, (u8, Stamp)>,
}

impl SecurityMetadata {
    /// A stamp later than every one here.
    pub fn next_stamp(&self, now_ms: u64, node: &str) -> Stamp {
        let highest = self
            .users
            .values()
            .map(|u| u.1.ms)
            .chain(self.grants.values().map(|g| g.1.ms))
            .chain(self.enabled.1.iter().map(|s| s.ms))
            .max()
            .unwrap_or(0);
        Stamp {
            ms: now_ms.max(highest + 1),
            node: node.to_string(),
        }
    }

    /// Merges another node's metadata (the later write of every entry);
    /// true if this one changed.
    pub fn merge(&mut self, other: &SecurityMetadata) -> bool {
        let mut changed = false;
        if other.enabled.1 > self.enabled.1 {
            self.enabled = other.enabled.clone();
            changed = true;
        }
        for (name, theirs) in &other.users {
            match self.users.get(name) {
                Some(ours) if ours.1 >= theirs.1 => {}
                _ => {
                    self.users.insert(name.clone(), theirs.clone());
                    changed = true;
                }
            }
        }
        for (key, theirs) in &other.grants {
            match self.grants.get(key) {
                Some(ours) if ours.1 >= theirs.1 => {}
                _ => {
                    self.grants.insert(key.clone(), theirs.clone());
                    changed = true;
                }
            }
        }
        changed
    }

    /// A digest of the whole: equal digests, equal metadata.
    pub fn digest(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }

    /// True if security is on.
    pub fn enabled(&self) -> bool {
        self.enabled.0
    }

    /// Turns security on or off.
    pub fn set_enabled(&mut self, on: bool, stamp: Stamp) {
        self.enabled = (on, Some(stamp));
    }

    /// Adds (or replaces) `name` with the password hash `hash`.
    pub fn set_user(&mut self, name: &str, hash: String, stamp: Stamp) {
        self.users.insert(name.to_string(), (Some(hash), stamp));
    }

    /// Deletes `name` (and, in effect, its grants). False if there was none.
    pub fn delete_user(&mut self, name: &str, stamp: Stamp) -> bool {
        if self.password_hash(name).is_none() {
            return false;
        }
        self.users.insert(name.to_string(), (None, stamp.clone()));
        for (key, grant) in self.grants.iter_mut() {
            if key.0 == name {
                *grant = (0, stamp.clone());
            }
        }
        true
    }

    /// The password hash of `name`, if it is a user.
    pub fn password_hash(&self, name: &str) -> Option<&str> {
        self.users.get(name).and_then(|u| u.0.as_deref())
    }

    /// The users, by name.
    pub fn users(&self) -> Vec<String> {
        self.users
            .iter()
            .filter(|(_, u)| u.0.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Adds `bits` to (`grant`) or removes them from (`!grant`) what `key`
    /// allows.
    pub fn change_grant(&mut self, key: GrantKey, bits: u8, grant: bool, stamp: Stamp) {
        let now = self.grants.get(&key).map_or(0, |g| g.0);
        let next = if grant { now | bits } else { now & !bits };
        self.grants.insert(key, (next, stamp));
    }

    /// The grants in force: (user, type, bucket, permissions).
    pub fn grants(&self) -> Vec<(String, String, String, Vec<&'static str>)> {
        self.grants
            .iter()
            .filter(|(_, g)| g.0 != 0)
            .map(|((u, t, b), g)| (u.clone(), t.clone(), b.clone(), Perm::names(g.0)))
            .collect()
    }

    /// True if `user` may do `perm` on `bucket` of `bucket_type` (`None`:
    /// not about one bucket type, as admin work is).
    pub fn permits(&self, user: &str, perm: Perm, on: Option<(&str, &str)>) -> bool {
        if self.password_hash(user).is_none() {
            return false;
        }
        self.grants.iter().any(|((u, t, b), g)| {
            u == user
                && g.0 & perm.bit() != 0
                && match on {
                    None => t == "any",
                    Some((ty, bucket)) => (t == "any" || t == ty) && (b.is_empty() || b == bucket),
                }
        })
    }
}

/// Hashes a password (Argon2id, a fresh salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// The node's security metadata and the checks made with it.
pub struct Security {
    me: String,
    map: RwLock<SecurityMetadata>,
    /// Passwords verified lately: (user, SHA-256 of the password) → the
    /// hash they were verified against.
    verified: Mutex<HashMap<(String, [u8; 32]), String>>,
}

impl Security {
    /// The registry of node `me`, from its persisted metadata.
    pub fn new(me: &str, map: SecurityMetadata) -> Security {
        Security {
            me: me.to_string(),
            map: RwLock::new(map),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// A copy of the metadata (to persist or send).
    pub fn snapshot(&self) -> SecurityMetadata {
        self.map.read().clone()
    }

    /// Its digest.
    pub fn digest(&self) -> u64 {
        self.map.read().digest()
    }

    /// Merges a peer's metadata; true if ours changed.
    pub fn merge(&self, other: &SecurityMetadata) -> bool {
        self.map.write().merge(other)
    }

    /// True if security is on.
    pub fn enabled(&self) -> bool {
        self.map.read().enabled()
    }

    /// Applies a change made on this node, stamped later than every entry.
    pub fn change<T>(&self, f: impl FnOnce(&mut SecurityMetadata, Stamp) -> T) -> T {
        let mut map = self.map.write();
        let stamp = map.next_stamp(now_ms(), &self.me);
        f(&mut map, stamp)
    }

    /// True if `password` is `user`'s.
    pub fn check_password(&self, user: &str, password: &str) -> bool {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        use sha2::Digest;
        let Some(hash) = self.map.read().password_hash(user).map(str::to_string) else {
            return false;
        };
        let key = (
            user.to_string(),
            sha2::Sha256::digest(password.as_bytes()).into(),
        );
        if self.verified.lock().get(&key) == Some(&hash) {
            return true;
        }
        let ok = PasswordHash::new(&hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
        if ok {
            let mut verified = self.verified.lock();
            if verified.len() > 10_000 {
                verified.clear();
            }
            verified.insert(key, hash);
        }
        ok
    }

    /// True if `user` may do `perm` (see [`SecurityMetadata::permits`]).
    pub fn permits(&self, user: &str, perm: Perm, on: Option<(&str, &str)>) -> bool {
        self.map.read().permits(user, perm, on)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ms: u64) -> Stamp {
        Stamp {
            ms,
            node: "n1".into(),
        }
    }

    #[test]
    fn grants_cover_their_type_and_bucket_only() {
        let mut m = SecurityMetadata::default();
        m.set_user("ann", "x".into(), stamp(1));
        m.change_grant(
            ("ann".into(), "default".into(), "b".into()),
            Perm::Read.bit(),
            true,
            stamp(2),
        );
        assert!(m.permits("ann", Perm::Read, Some(("default", "b"))));
        assert!(!m.permits("ann", Perm::Read, Some(("default", "c"))));
        assert!(!m.permits("ann", Perm::Write, Some(("default", "b"))));
        assert!(!m.permits("ann", Perm::Admin, None));
        assert!(!m.permits("bob", Perm::Read, Some(("default", "b"))));
        m.change_grant(
            ("ann".into(), "any".into(), String::new()),
            Perm::Admin.bit(),
            true,
            stamp(3),
        );
        assert!(m.permits("ann", Perm::Admin, None));
        m.change_grant(
            ("ann".into(), "default".into(), "b".into()),
            Perm::Read.bit(),
            false,
            stamp(4),
        );
        assert!(!m.permits("ann", Perm::Read, Some(("default", "b"))));
        assert!(m.delete_user("ann", stamp(5)));
        assert!(!m.permits("ann", Perm::Admin, None));
    }

    #[test]
    fn merging_keeps_the_later_write_of_every_entry_in_any_order() {
        let mut a = SecurityMetadata::default();
        a.set_user("ann", "h1".into(), stamp(1));
        a.set_enabled(true, stamp(2));
        let mut b = SecurityMetadata::default();
        b.set_user("ann", "h2".into(), stamp(3));
        b.change_grant(
            ("ann".into(), "any".into(), String::new()),
            Perm::Read.bit(),
            true,
            stamp(4),
        );
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.password_hash("ann"), Some("h2"));
        assert!(ab.enabled());
        assert!(!ab.merge(&ba), "merging the same again changes nothing");
    }

    #[test]
    fn permissions_parse_by_dynakv_and_riak_names() {
        let bits = Perm::parse_set("read,riak_kv.put").expect("parses");
        assert_eq!(Perm::names(bits), ["read", "write"]);
        assert!(Perm::parse_set("fly").is_err());
        assert!(Perm::parse_set("").is_err());
    }

    #[test]
    fn a_password_checks_against_its_hash_only() {
        let s = Security::new("n1", SecurityMetadata::default());
        let hash = hash_password("s3cret").expect("hash");
        s.change(|m, st| m.set_user("ann", hash, st));
        assert!(s.check_password("ann", "s3cret"));
        assert!(s.check_password("ann", "s3cret"), "from the cache");
        assert!(!s.check_password("ann", "wrong"));
        assert!(!s.check_password("bob", "s3cret"));
    }
}
