//! The sending side: batches of a partition served to a new replica from one
//! contiguous scan, within `transfer_limit` and the handoff byte budget.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dynakv_ring::{PARTITIONS, Ring};

use crate::server::cluster::rpc::Response;

use super::{MAX_BATCH_BYTES, TransferState, TransferView, Transfers};

impl Transfers {
    /// Serves one batch of a partition to a new replica.
    pub async fn on_transfer_fetch(
        self: &Arc<Self>,
        peer: String,
        partition: u16,
        after: Option<Bytes>,
        max_bytes: u32,
    ) -> Response {
        let p = usize::from(partition);
        if p >= PARTITIONS {
            return Response::Error(format!("no partition {p}"));
        }
        // Only a serving replica has the whole partition to give.
        if !self
            .core
            .cluster
            .ring()
            .replicas(p)
            .any(|r| r == self.core.identity.name)
        {
            return Response::NotReplica;
        }
        let Ok(_slot) = self.send_slots.try_acquire() else {
            return Response::Busy;
        };
        // About 100 ms of the rate budget per batch, so a throttled transfer
        // moves in small steps (and resumes close to where it stopped).
        let budget = self.core.handoff_budget.per_tenth_of_a_second();
        let limit = (max_bytes as usize)
            .min(budget)
            .clamp(4096, MAX_BATCH_BYTES);
        let scanned = self
            .core
            .blocking(move |core| {
                core.storage
                    .scan_objects(Ring::range_of(p), after.as_deref(), limit)
            })
            .await;
        let batch = match scanned {
            Ok(b) => b,
            Err(e) => return Response::Error(e.to_string()),
        };
        let bytes: usize = batch.items.iter().map(|(k, _, n)| k.len() + n).sum();
        self.core.handoff_budget.take(bytes).await;
        let keys = batch.items.len() as u64;
        let m = &self.core.metrics;
        m.transfer_keys_sent.inc_by(keys);
        m.transfer_bytes_sent.inc_by(bytes as u64);
        if batch.done {
            m.transfer_partitions_sent.inc();
        }
        {
            let mut outbound = self.outbound.lock();
            let (view, at) = outbound.entry((p, peer.clone())).or_insert_with(|| {
                (
                    TransferView {
                        partition: p,
                        from: self.core.identity.name.clone(),
                        to: peer,
                        keys: 0,
                        bytes: 0,
                        state: TransferState::Sending,
                    },
                    Instant::now(),
                )
            });
            view.keys += keys;
            view.bytes += bytes as u64;
            view.state = if batch.done {
                TransferState::Sent
            } else {
                TransferState::Sending
            };
            *at = Instant::now();
        }
        Response::TransferBatch {
            items: batch
                .items
                .into_iter()
                .map(|(k, o, _)| (Bytes::from(k), o))
                .collect(),
            resume_after: batch.resume_after.map(Bytes::from),
            done: batch.done,
        }
    }
}
