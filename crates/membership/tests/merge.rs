//! Merging gossip tables: the result does not depend on delivery order or
//! repetition (the newest entry of every member wins).

use std::net::SocketAddr;

use dynakv_membership::{
    ClusterRing, Entry, GossipConfig, GossipMessage, MemberInfo, MemberState, Membership,
};
use proptest::prelude::*;

fn entry(name: usize, generation: u64, heartbeat: u64, removed: bool) -> Entry {
    Entry {
        info: MemberInfo {
            name: format!("m{name}"),
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], 9000 + name as u16)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 9100 + name as u16)),
            zone: None,
            weight: 1.0,
        },
        generation,
        heartbeat,
        state: if removed {
            MemberState::Removed
        } else {
            MemberState::Active
        },
        state_changed_at: 0,
        ring: Default::default(),
        received: Default::default(),
    }
}

fn message() -> impl Strategy<Value = GossipMessage> {
    proptest::collection::vec(
        (0usize..4, 1u64..4, 0u64..50, proptest::bool::weighted(0.1)),
        0..8,
    )
    .prop_map(|rows| {
        // One row per member per message, as a real table has.
        let mut entries: Vec<Entry> = Vec::new();
        for (n, g, h, r) in rows {
            if !entries.iter().any(|e| e.info.name == format!("m{n}")) {
                entries.push(entry(n, g, h, r));
            }
        }
        GossipMessage {
            from: "x".into(),
            entries,
            ring: None,
            cluster: 0,
        }
    })
}

fn observer() -> Membership {
    let me = MemberInfo {
        name: "observer".into(),
        rpc_addr: SocketAddr::from(([127, 0, 0, 1], 9999)),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 9998)),
        zone: None,
        weight: 1.0,
    };
    Membership::new(
        me,
        1,
        Vec::new(),
        ClusterRing::default(),
        Vec::new(),
        GossipConfig::default(),
        0,
    )
}

fn table(m: &Membership) -> Vec<Entry> {
    m.entries().cloned().collect()
}

proptest! {
    #[test]
    fn merge_order_and_repetition_do_not_matter(msgs in proptest::collection::vec(message(), 1..5)) {
        let mut forward = observer();
        for m in &msgs { forward.receive(m, 1); }
        let mut backward = observer();
        for m in msgs.iter().rev() { backward.receive(m, 1); backward.receive(m, 1); }
        prop_assert_eq!(table(&forward), table(&backward));
        // And every member ends with its newest entry.
        for e in table(&forward) {
            if e.info.name == "observer" { continue; }
            for m in &msgs {
                for theirs in m.entries.iter().filter(|t| t.info.name == e.info.name) {
                    prop_assert!((e.generation, e.state == MemberState::Removed, e.heartbeat)
                        >= (theirs.generation, theirs.state == MemberState::Removed, theirs.heartbeat));
                }
            }
        }
    }
}

/// Gossip is checked field by field: a member with a weight the ring cannot
/// use, a zone too long or an address nobody can dial is not taken in, and a
/// ring whose log holds such a weight is not adopted.
#[test]
fn implausible_members_and_rings_are_not_merged() {
    let mut m = observer();
    let mut bad = entry(1, 1, 1, false);
    bad.info.weight = -1.0;
    let mut nan = entry(2, 1, 1, false);
    nan.info.weight = f64::NAN;
    let mut zone = entry(3, 1, 1, false);
    zone.info.zone = Some("z".repeat(65));
    let mut unspecified = entry(4, 1, 1, false);
    unspecified.info.rpc_addr = SocketAddr::from(([0, 0, 0, 0], 7000));
    let good = entry(5, 1, 1, false);
    let mut ring = ClusterRing::bootstrap("m1", -1.0, None);
    ring.version = 99;
    m.receive(
        &GossipMessage {
            from: "x".into(),
            entries: vec![bad, nan, zone, unspecified, good],
            ring: Some(ring),
            cluster: 0,
        },
        1,
    );
    let names: Vec<String> = table(&m).into_iter().map(|e| e.info.name).collect();
    assert_eq!(names, ["m5", "observer"]);
    assert_ne!(
        m.ring().version,
        99,
        "a ring with a negative weight was adopted"
    );
}

/// A member removed more than the grace period ago is forgotten, and not
/// learned again from a node that still lists it.
#[test]
fn members_gone_long_ago_are_forgotten() {
    let week = dynakv_membership::FORGET_AFTER_MS;
    let mut m = observer();
    let mut gone = entry(1, 1, 1, true);
    gone.state_changed_at = 10;
    let msg = GossipMessage {
        from: "x".into(),
        entries: vec![gone],
        ring: None,
        cluster: 0,
    };
    m.receive(&msg, 20);
    assert!(m.entry("m1").is_some(), "a recent removal is kept");
    m.refresh(week + 100);
    assert!(
        m.entry("m1").is_none(),
        "not forgotten after the grace period"
    );
    m.receive(&msg, week + 100);
    assert!(m.entry("m1").is_none(), "learned again");
}
