//! Replica-aware routing (Dynamo §6.4, client-driven coordination): the
//! client reads the ring and sends each request to one of its key's replicas,
//! so no write pays a hop through a node that would only forward it.

use std::collections::HashMap;

/// The base URLs of each partition's serving replicas, as they were when the
/// ring was read (only members reported up).
#[derive(Clone, Debug)]
pub struct Router {
    by_partition: Vec<Vec<String>>,
}

impl Router {
    /// Builds the table from `GET /admin/ring` and `GET /admin/status` answers.
    pub fn from_answers(
        ring: &serde_json::Value,
        status: &serde_json::Value,
    ) -> Result<Router, String> {
        Router::from_answers_with(ring, status, "http")
    }

    /// [`Router::from_answers`], reaching the members with `scheme`
    /// (`https` for a cluster that speaks TLS).
    pub fn from_answers_with(
        ring: &serde_json::Value,
        status: &serde_json::Value,
        scheme: &str,
    ) -> Result<Router, String> {
        let mut urls = HashMap::new();
        for m in status["members"].as_array().into_iter().flatten() {
            if let (Some(name), Some(addr), Some("up")) = (
                m["name"].as_str(),
                m["http_addr"].as_str(),
                m["status"].as_str(),
            ) {
                urls.insert(name.to_string(), format!("{scheme}://{addr}"));
            }
        }
        let mut by_partition = vec![Vec::new(); dynakv_ring::PARTITIONS];
        for range in ring["ranges"].as_array().into_iter().flatten() {
            let Some(p) = range["partition"].as_u64().map(|p| p as usize) else {
                continue;
            };
            if let Some(slot) = by_partition.get_mut(p) {
                *slot = range["replicas"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| urls.get(r.as_str()?).cloned())
                    .collect();
            }
        }
        if by_partition.iter().any(Vec::is_empty) {
            return Err("some partitions have no replica that is up".into());
        }
        Ok(Router { by_partition })
    }

    /// `key`'s replicas, starting at `turn` (rotating spreads the load).
    pub fn replicas(&self, key: &[u8], turn: usize) -> impl Iterator<Item = &str> {
        let p = dynakv_ring::Ring::partition_of(dynakv_ring::token(key));
        let replicas = &self.by_partition[p];
        let n = replicas.len();
        (0..n).map(move |i| replicas[(turn + i) % n].as_str())
    }

    /// The serving replicas of one partition.
    pub fn partition(&self, partition: usize) -> &[String] {
        self.by_partition.get(partition).map_or(&[], Vec::as_slice)
    }
}
