//! Message codes: the byte after the length prefix that says which message the
//! body holds.
//!
//! The table is Riak's `riak_pb_messages.csv` (basho/riak_pb, `develop`),
//! complete, including the codes this crate has no struct for. Codes missing from
//! the table (35–39, 43–49, 61–69, …) are unassigned.

/// Declares one `pub const` per message code and [`name`], the code's Riak
/// message name, from a single table so the two cannot disagree.
macro_rules! message_codes {
    ($($constant:ident = $code:literal, $message:literal;)*) => {
        $(
            #[doc = concat!("`", $message, "` (", stringify!($code), ").")]
            pub const $constant: u8 = $code;
        )*

        /// The Riak message name of `code` (`"RpbGetReq"` for 9), or `None` if
        /// Riak assigns no message to it.
        pub fn name(code: u8) -> Option<&'static str> {
            match code {
                $($code => Some($message),)*
                _ => None,
            }
        }
    };
}

message_codes! {
    ERROR_RESP = 0, "RpbErrorResp";
    PING_REQ = 1, "RpbPingReq";
    PING_RESP = 2, "RpbPingResp";
    GET_CLIENT_ID_REQ = 3, "RpbGetClientIdReq";
    GET_CLIENT_ID_RESP = 4, "RpbGetClientIdResp";
    SET_CLIENT_ID_REQ = 5, "RpbSetClientIdReq";
    SET_CLIENT_ID_RESP = 6, "RpbSetClientIdResp";
    GET_SERVER_INFO_REQ = 7, "RpbGetServerInfoReq";
    GET_SERVER_INFO_RESP = 8, "RpbGetServerInfoResp";
    GET_REQ = 9, "RpbGetReq";
    GET_RESP = 10, "RpbGetResp";
    PUT_REQ = 11, "RpbPutReq";
    PUT_RESP = 12, "RpbPutResp";
    DEL_REQ = 13, "RpbDelReq";
    DEL_RESP = 14, "RpbDelResp";
    LIST_BUCKETS_REQ = 15, "RpbListBucketsReq";
    LIST_BUCKETS_RESP = 16, "RpbListBucketsResp";
    LIST_KEYS_REQ = 17, "RpbListKeysReq";
    LIST_KEYS_RESP = 18, "RpbListKeysResp";
    GET_BUCKET_REQ = 19, "RpbGetBucketReq";
    GET_BUCKET_RESP = 20, "RpbGetBucketResp";
    SET_BUCKET_REQ = 21, "RpbSetBucketReq";
    SET_BUCKET_RESP = 22, "RpbSetBucketResp";
    MAP_RED_REQ = 23, "RpbMapRedReq";
    MAP_RED_RESP = 24, "RpbMapRedResp";
    INDEX_REQ = 25, "RpbIndexReq";
    INDEX_RESP = 26, "RpbIndexResp";
    SEARCH_QUERY_REQ = 27, "RpbSearchQueryReq";
    SEARCH_QUERY_RESP = 28, "RpbSearchQueryResp";
    RESET_BUCKET_REQ = 29, "RpbResetBucketReq";
    RESET_BUCKET_RESP = 30, "RpbResetBucketResp";
    GET_BUCKET_TYPE_REQ = 31, "RpbGetBucketTypeReq";
    SET_BUCKET_TYPE_REQ = 32, "RpbSetBucketTypeReq";
    GET_BUCKET_KEY_PREFLIST_REQ = 33, "RpbGetBucketKeyPreflistReq";
    GET_BUCKET_KEY_PREFLIST_RESP = 34, "RpbGetBucketKeyPreflistResp";
    CS_BUCKET_REQ = 40, "RpbCSBucketReq";
    CS_BUCKET_RESP = 41, "RpbCSBucketResp";
    INDEX_BODY_RESP = 42, "RpbIndexBodyResp";
    COUNTER_UPDATE_REQ = 50, "RpbCounterUpdateReq";
    COUNTER_UPDATE_RESP = 51, "RpbCounterUpdateResp";
    COUNTER_GET_REQ = 52, "RpbCounterGetReq";
    COUNTER_GET_RESP = 53, "RpbCounterGetResp";
    YOKOZUNA_INDEX_GET_REQ = 54, "RpbYokozunaIndexGetReq";
    YOKOZUNA_INDEX_GET_RESP = 55, "RpbYokozunaIndexGetResp";
    YOKOZUNA_INDEX_PUT_REQ = 56, "RpbYokozunaIndexPutReq";
    YOKOZUNA_INDEX_DELETE_REQ = 57, "RpbYokozunaIndexDeleteReq";
    YOKOZUNA_SCHEMA_GET_REQ = 58, "RpbYokozunaSchemaGetReq";
    YOKOZUNA_SCHEMA_GET_RESP = 59, "RpbYokozunaSchemaGetResp";
    YOKOZUNA_SCHEMA_PUT_REQ = 60, "RpbYokozunaSchemaPutReq";
    COVERAGE_REQ = 70, "RpbCoverageReq";
    COVERAGE_RESP = 71, "RpbCoverageResp";
    DT_FETCH_REQ = 80, "DtFetchReq";
    DT_FETCH_RESP = 81, "DtFetchResp";
    DT_UPDATE_REQ = 82, "DtUpdateReq";
    DT_UPDATE_RESP = 83, "DtUpdateResp";
    TS_QUERY_REQ = 90, "TsQueryReq";
    TS_QUERY_RESP = 91, "TsQueryResp";
    TS_PUT_REQ = 92, "TsPutReq";
    TS_PUT_RESP = 93, "TsPutResp";
    TS_DEL_REQ = 94, "TsDelReq";
    TS_DEL_RESP = 95, "TsDelResp";
    TS_GET_REQ = 96, "TsGetReq";
    TS_GET_RESP = 97, "TsGetResp";
    TS_LIST_KEYS_REQ = 98, "TsListKeysReq";
    TS_LIST_KEYS_RESP = 99, "TsListKeysResp";
    TS_COVERAGE_REQ = 100, "TsCoverageReq";
    TS_COVERAGE_RESP = 101, "TsCoverageResp";
    TS_COVERAGE_ENTRY = 102, "TsCoverageEntry";
    TS_RANGE = 103, "TsRange";
    TS_TTB_MSG = 104, "TsTtbMsg";
    REPL_GET_REQ = 128, "RpbReplGetReq";
    REPL_GET_CLUSTER_ID_REQ = 129, "RpbReplGetClusterIdReq";
    REPL_GET_CLUSTER_ID_RESP = 130, "RpbReplGetClusterIdResp";
    RTE_REQ = 200, "RpbRTEReq";
    RTE_RESP = 201, "RpbRTEResp";
    FETCH_REQ = 202, "RpbFetchReq";
    FETCH_RESP = 203, "RpbFetchResp";
    PUSH_REQ = 204, "RpbPushReq";
    PUSH_RESP = 205, "RpbPushResp";
    MEMBERSHIP_REQ = 206, "RpbMembershipReq";
    MEMBERSHIP_RESP = 207, "RpbMembershipResp";
    AAE_FOLD_MERGE_ROOT_NVAL_REQ = 210, "RpbAaeFoldMergeRootNValReq";
    AAE_FOLD_MERGE_BRANCH_NVAL_REQ = 211, "RpbAaeFoldMergeBranchNValReq";
    AAE_FOLD_FETCH_CLOCKS_NVAL_REQ = 212, "RpbAaeFoldFetchClocksNValReq";
    AAE_FOLD_MERGE_TREES_RANGE_REQ = 213, "RpbAaeFoldMergeTreesRangeReq";
    AAE_FOLD_FETCH_CLOCKS_RANGE_REQ = 214, "RpbAaeFoldFetchClocksRangeReq";
    AAE_FOLD_FIND_KEYS_REQ = 215, "RpbAaeFoldFindKeysReq";
    AAE_FOLD_OBJECT_STATS_REQ = 216, "RpbAaeFoldObjectStatsReq";
    AAE_FOLD_REPL_KEYS_REQ = 217, "RpbAaeFoldReplKeysReq";
    AAE_FOLD_FIND_TOMBS_REQ = 218, "RpbAaeFoldFindTombsReq";
    AAE_FOLD_REPAIR_KEYS_REQ = 219, "RpbAaeFoldRepairKeysReq";
    AAE_FOLD_TREE_RESP = 220, "RpbAaeFoldTreeResp";
    AAE_FOLD_KEY_VALUE_RESP = 221, "RpbAaeFoldKeyValueResp";
    AAE_FOLD_KEY_COUNT_RESP = 222, "RpbAaeFoldKeyCountResp";
    AAE_FOLD_LIST_BUCKETS_REQ = 223, "RpbAaeFoldListBucketsReq";
    AAE_FOLD_LIST_BUCKETS_RESP = 224, "RpbAaeFoldListBucketsResp";
    AAE_FOLD_REAP_TOMBS_REQ = 230, "RpbAaeFoldReapTombsReq";
    AAE_FOLD_ERASE_KEYS_REQ = 231, "RpbAaeFoldEraseKeysReq";
    AUTH_REQ = 253, "RpbAuthReq";
    AUTH_RESP = 254, "RpbAuthResp";
    START_TLS = 255, "RpbStartTls";
}

/// Whether `code` is a message a client sends and a server must answer: every
/// `…Req` in the table, plus `RpbStartTls` and `TsTtbMsg` (the client's half of
/// the two messages that travel both ways).
///
/// [`Request::decode`](crate::Request::decode) turns such a code into
/// [`Request::Other`](crate::Request::Other) when this crate does not decode it,
/// and any other code into [`WireError::UnknownCode`](crate::WireError::UnknownCode).
pub fn is_request(code: u8) -> bool {
    match name(code) {
        Some(message) => message.ends_with("Req") || code == START_TLS || code == TS_TTB_MSG,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_request_codes() {
        assert_eq!(name(GET_REQ), Some("RpbGetReq"));
        assert_eq!(name(35), None);
        assert!(is_request(PING_REQ));
        assert!(is_request(GET_BUCKET_TYPE_REQ));
        assert!(is_request(START_TLS));
        assert!(is_request(AUTH_REQ));
        assert!(!is_request(PING_RESP));
        assert!(!is_request(ERROR_RESP));
        assert!(!is_request(TS_RANGE));
        assert!(!is_request(150));
    }
}
