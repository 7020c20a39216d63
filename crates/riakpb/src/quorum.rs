//! Symbolic quorum values.
//!
//! The quorum fields of requests and bucket properties (`r`, `w`, `pr`, `pw`,
//! `dw`, `rw`) are `uint32`s, and the four largest values below `u32::MAX` stand
//! for Riak's named quorums (`RIAKPB_RW_*` in riak_pb's `riak_pb_kv_codec.hrl`,
//! decoded by `riak_pb_kv_codec:decode_quorum/1`).

/// `one` on the wire: `u32::MAX - 1` (4294967294).
pub const RW_ONE: u32 = u32::MAX - 1;
/// `quorum` on the wire: `u32::MAX - 2` (4294967293).
pub const RW_QUORUM: u32 = u32::MAX - 2;
/// `all` on the wire: `u32::MAX - 3` (4294967292).
pub const RW_ALL: u32 = u32::MAX - 3;
/// `default` on the wire: `u32::MAX - 4` (4294967291), the bucket's setting.
pub const RW_DEFAULT: u32 = u32::MAX - 4;

/// A quorum field's value: one of Riak's named quorums, or a number of replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PbQuorum {
    /// One replica.
    One,
    /// A majority of the replicas: `n_val / 2 + 1`.
    Quorum,
    /// Every replica.
    All,
    /// Whatever the bucket's properties say.
    Default,
    /// This many replicas. Never one of the symbolic values: [`PbQuorum::from_wire`]
    /// does not produce those, and [`PbQuorum::to_wire`] would turn them into
    /// the named quorum they stand for.
    Exactly(u32),
}

impl PbQuorum {
    /// Reads a quorum field.
    pub fn from_wire(value: u32) -> PbQuorum {
        match value {
            RW_ONE => PbQuorum::One,
            RW_QUORUM => PbQuorum::Quorum,
            RW_ALL => PbQuorum::All,
            RW_DEFAULT => PbQuorum::Default,
            n => PbQuorum::Exactly(n),
        }
    }

    /// The value to put in a quorum field.
    pub fn to_wire(self) -> u32 {
        match self {
            PbQuorum::One => RW_ONE,
            PbQuorum::Quorum => RW_QUORUM,
            PbQuorum::All => RW_ALL,
            PbQuorum::Default => RW_DEFAULT,
            PbQuorum::Exactly(n) => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_match_riak_pb() {
        assert_eq!(RW_ONE, 4_294_967_294);
        assert_eq!(RW_QUORUM, 4_294_967_293);
        assert_eq!(RW_ALL, 4_294_967_292);
        assert_eq!(RW_DEFAULT, 4_294_967_291);
    }

    #[test]
    fn round_trips() {
        for q in [
            PbQuorum::One,
            PbQuorum::Quorum,
            PbQuorum::All,
            PbQuorum::Default,
            PbQuorum::Exactly(0),
            PbQuorum::Exactly(3),
            PbQuorum::Exactly(u32::MAX),
            PbQuorum::Exactly(RW_DEFAULT - 1),
        ] {
            assert_eq!(PbQuorum::from_wire(q.to_wire()), q);
        }
        assert_eq!(PbQuorum::from_wire(4_294_967_293), PbQuorum::Quorum);
    }
}
