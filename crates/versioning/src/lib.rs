//! Causal versioning for dynakv: how concurrent writes become siblings instead of
//! lost updates.
//!
//! # The problem (Dynamo §4.4)
//!
//! Dynamo accepts a write on any replica, even while replicas cannot talk to each
//! other. Two clients can therefore update the same key "at the same time" (neither
//! having seen the other's write). A store that keeps only the newest timestamp
//! silently drops one of them. Dynamo instead keeps both as *siblings* and hands
//! them to the next reader, who merges them and writes the result back with a
//! *context* saying which versions the merge replaces.
//!
//! # Dotted version vector sets
//!
//! Dynamo used one vector-clock per version; dynakv uses the **dotted version vector
//! set** (DVVSet, Almeida, Baquero, Gonçalves, Preguiça and Fonte, *Scalable and
//! Accurate Causality Tracking for Eventually Consistent Stores*, 2014), as in Riak
//! 2.x and Garage's K2V. A DVVSet keeps, for every replica *actor* that ever
//! coordinated a write of the key:
//!
//! * a counter `n`: the actor has issued events `1..=n` for this key, and the set
//!   has seen all of them;
//! * the values of the newest few of those events that are still *concurrent*
//!   siblings, newest first: value `i` (0-based) carries the *dot* `(actor, n - i)`.
//!
//! The clock therefore grows with the number of replicas, never with the number of
//! clients, and the siblings are exactly the writes no later write has covered.
//!
//! The operations, each in [`DvvSet`]:
//!
//! * [`DvvSet::update`] — a coordinator applies a client write: everything the
//!   client's context covers is discarded, the rest stays as siblings, and the new
//!   value gets the next dot of the coordinator's actor.
//! * [`DvvSet::sync`] — two replicas' sets merge. It is commutative, associative
//!   and idempotent (see the property tests), so replicas may exchange state in any
//!   order, any number of times, and converge.
//! * [`DvvSet::context`] — the version vector of everything the set has seen; this
//!   is what clients receive as their causal context.
//!
//! # Causal-context tokens
//!
//! Clients never parse a context: [`CausalContext`] encodes a [`VersionVector`] as
//! a compact, URL-safe token signed with the cluster's [`ContextKey`], and
//! rejects malformed, tampered or forged tokens with a typed [`TokenError`].
//!
//! # Actor ids
//!
//! Dots are issued by actors that each process start (an [`Incarnation`])
//! mints: the incarnation's id in the high 32 bits, a per-incarnation sequence
//! in the low 32. No two incarnations share an actor, so whatever a restart
//! finds on disk (a restored backup, a shortened log, an empty directory) it
//! never continues a counter an earlier process issued, and never reissues a
//! dot another replica has already seen (the failure mode behind Riak's
//! "kv679" data-loss bug). A data directory also has an [`ActorId`] of its own
//! from its creation, which names the node in `/admin/status`; see
//! `incarnation.rs` for the whole mechanism.

mod actor;
mod clock;
mod counter;
mod dvvset;
mod incarnation;
mod object;
mod token;

pub use actor::ActorId;
pub use clock::VersionVector;
pub use counter::{COUNTER_CONTENT_TYPE, PnCounter};
pub use dvvset::{Dot, DvvSet};
pub use incarnation::Incarnation;
pub use object::{Link, Metadata, Object, TooManySiblings, Version};
pub use token::{CausalContext, ContextKey, ContextSigner, MAX_ACTORS, MAX_COUNTER, TokenError};
