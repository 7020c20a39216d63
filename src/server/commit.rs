//! Group commit of a coordinator's own writes.
//!
//! Every write this node coordinates first updates the key's object here: a
//! read-modify-write under the key's lock stripe, then a write-ahead-log
//! append. Done by each request on its async worker, two concurrent writes
//! meet in RocksDB's write group, where one thread appends for both while the
//! other spins and calls `sched_yield` until it is done: the profile of a
//! single-node PUT run showed 1.4 `sched_yield` per PUT, and a worker doing
//! nothing while it waits.
//!
//! [`GroupCommit`] combines them instead (flat combining): a write queues its
//! update and, if nobody is writing, becomes the writer. The writer takes
//! everything queued, applies it as one [`Storage::try_update_batch`] (one
//! log append for the lot), answers every owner and looks again. A write that
//! finds the writer busy leaves its update queued and awaits its answer, so
//! its worker goes on serving other connections meanwhile.
//!
//! Nothing is acknowledged before its batch is in the log (the answer is sent
//! after the write returns), and nothing queued is left behind: every caller
//! that queues tries to become the writer, and a writer that leaves looks at
//! the queue once more after giving up the role.

use dynakv_storage::{BatchUpdate, ObjectStore, Storage, UpdateOutcome};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::oneshot;

/// How many batches one writer writes before handing the role on: its own
/// request was answered in the first, so it does not serve others forever.
const MAX_ROUNDS: usize = 8;

/// An update waiting for the writer, and where its outcome goes.
struct Queued<E> {
    update: BatchUpdate<E>,
    answer: oneshot::Sender<Answer<E>>,
}

/// What the writer tells an update's owner.
enum Answer<E> {
    /// Applied (or refused, or failed) as part of a batch.
    Done(UpdateOutcome<E>),
    /// Not applied: a key of the batch was locked by a bulk operation (a
    /// transfer, a load). The owner applies its update alone, waiting for
    /// the lock as a single write always did, so the writer never waits
    /// while others queue behind it.
    Alone(BatchUpdate<E>),
}

/// Combines concurrent single-key updates into shared storage writes.
pub struct GroupCommit<E> {
    queue: Mutex<Vec<Queued<E>>>,
    /// Held by the caller writing the queue.
    writer: Mutex<()>,
    /// Counts the batches written.
    batches: Counter,
}

impl<E: Send + 'static> GroupCommit<E> {
    /// An empty queue; `batches` counts the storage writes it makes.
    pub fn new(batches: Counter) -> GroupCommit<E> {
        GroupCommit {
            queue: Mutex::new(Vec::new()),
            writer: Mutex::new(()),
            batches,
        }
    }

    /// Applies `update` as [`ObjectStore::update`] would, sharing the storage
    /// write with concurrent callers. If this caller wrote batches for others
    /// and stopped with updates still queued, it calls `hand_off`, which must
    /// arrange for [`GroupCommit::write_queued`] to run again soon (spawn a
    /// task): their owners are waiting for a writer.
    pub async fn update(
        &self,
        storage: &Storage,
        update: BatchUpdate<E>,
        hand_off: impl FnOnce(),
    ) -> UpdateOutcome<E> {
        let (answer, outcome) = oneshot::channel();
        self.queue.lock().push(Queued { update, answer });
        if self.write_queued(storage) {
            hand_off();
        }
        match outcome.await {
            Ok(Answer::Done(outcome)) => outcome,
            Ok(Answer::Alone(update)) => storage
                .update(&update.key, update.apply)
                .map(|r| r.map(|((), object)| object)),
            // The writer dropped the batch unanswered: it panicked applying
            // it, before anything of it was written.
            Err(_) => panic!("the group-commit writer panicked while applying a batch"),
        }
    }

    /// Writes what is queued unless another caller is writing (who then
    /// writes it). Returns true if it stopped after [`MAX_ROUNDS`] batches
    /// with updates still queued and nobody writing them.
    pub fn write_queued(&self, storage: &Storage) -> bool {
        let mut rounds = 0;
        loop {
            let Some(writer) = self.writer.try_lock() else {
                // The writer writes what we queued: it takes the queue after
                // taking the role, and looks again after giving it up.
                return false;
            };
            while rounds < MAX_ROUNDS {
                let queued = std::mem::take(&mut *self.queue.lock());
                if queued.is_empty() {
                    break;
                }
                self.write(storage, queued);
                rounds += 1;
            }
            drop(writer);
            // Updates queued after the last look by callers that found the
            // role taken, or left after MAX_ROUNDS: write them, or hand them
            // on if this caller wrote its share.
            if self.queue.lock().is_empty() {
                return false;
            }
            if rounds >= MAX_ROUNDS {
                return true;
            }
        }
    }

    /// Applies one batch and answers its owners.
    fn write(&self, storage: &Storage, queued: Vec<Queued<E>>) {
        let (updates, answers): (Vec<_>, Vec<_>) =
            queued.into_iter().map(|q| (q.update, q.answer)).unzip();
        match storage.try_update_batch(updates) {
            Ok(outcomes) => {
                self.batches.inc();
                for (answer, outcome) in answers.into_iter().zip(outcomes) {
                    // An owner that went away (its client disconnected) no
                    // longer needs the answer; the write stands, as it would
                    // had it been applied alone.
                    let _ = answer.send(Answer::Done(outcome));
                }
            }
            Err(updates) => {
                for (answer, update) in answers.into_iter().zip(updates) {
                    let _ = answer.send(Answer::Alone(update));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use dynakv_storage::StorageConfig;
    use dynakv_versioning::{ActorId, Object, Version, VersionVector};

    use super::*;

    fn open(dir: &std::path::Path) -> Arc<Storage> {
        Arc::new(
            Storage::open(&StorageConfig {
                path: dir.to_path_buf(),
                block_cache_mb: 8,
                sync_writes: false,
            })
            .expect("open"),
        )
    }

    /// A blind write of `value` to `key`: every one adds a sibling.
    fn write(key: &str, value: u8) -> BatchUpdate<()> {
        BatchUpdate {
            key: Bytes::copy_from_slice(key.as_bytes()),
            apply: Box::new(move |o: &mut Object| {
                o.update(
                    &VersionVector::new(),
                    ActorId(1),
                    Version::value(vec![value], "", 0),
                );
                Ok(())
            }),
        }
    }

    fn values(o: &Object) -> Vec<u8> {
        let mut v: Vec<u8> = o
            .live()
            .iter()
            .filter_map(|v| v.data.as_ref().map(|d| d[0]))
            .collect();
        v.sort_unstable();
        v
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn updates_queued_while_another_caller_writes_share_one_batch_and_each_gets_its_answer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = open(dir.path());
        let batches = Counter::default();
        let commit = Arc::new(GroupCommit::new(batches.clone()));
        // Another caller is writing: updates queue up behind it.
        let role = commit.writer.lock();
        let tasks: Vec<_> = (0..10u8)
            .map(|i| {
                let (commit, storage) = (Arc::clone(&commit), Arc::clone(&storage));
                tokio::spawn(async move {
                    let key = format!("k{}", i % 3);
                    let outcome = commit
                        .update(&storage, write(&key, i), || panic!("no hand-off"))
                        .await;
                    (i, outcome)
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while commit.queue.lock().len() < 10 {
            assert!(Instant::now() < deadline, "updates were not queued");
            // The test's own thread, not a worker: the tasks run meanwhile.
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            storage.key_count(),
            0,
            "nothing written while the role is held"
        );
        drop(role);
        // The writer leaving looks at the queue again (here: the caller that
        // next tries the role).
        assert!(!commit.write_queued(&storage));
        for task in tasks {
            let (i, outcome) = task.await.expect("task");
            let object = outcome.expect("storage").expect("applied");
            assert!(
                values(&object).contains(&i),
                "update {i} sees its own write"
            );
        }
        assert_eq!(batches.get(), 1, "one storage write for the ten");
        for k in 0..3u8 {
            let stored = storage.get(format!("k{k}").as_bytes()).expect("get");
            let expected: Vec<u8> = (0..10).filter(|i| i % 3 == k).collect();
            assert_eq!(values(&stored.expect("stored")), expected);
        }
    }

    #[test]
    fn a_writer_hands_on_after_its_share_and_nothing_queued_is_left_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = open(dir.path());
        let commit = Arc::new(GroupCommit::<()>::new(Counter::default()));
        let answers = Arc::new(Mutex::new(Vec::new()));
        // Each update, when applied, queues the next: a stream of writes
        // arriving while the writer writes, longer than its share.
        fn chained(
            i: usize,
            last: usize,
            commit: Arc<GroupCommit<()>>,
            answers: Arc<Mutex<Vec<oneshot::Receiver<Answer<()>>>>>,
        ) -> Queued<()> {
            let (answer, outcome) = oneshot::channel();
            answers.lock().push(outcome);
            let mut update = write(&format!("k{i}"), i as u8);
            let apply = update.apply;
            update.apply = Box::new(move |o| {
                if i < last {
                    let next = chained(i + 1, last, Arc::clone(&commit), Arc::clone(&answers));
                    commit.queue.lock().push(next);
                }
                apply(o)
            });
            Queued { update, answer }
        }
        let last = MAX_ROUNDS + 2;
        let first = chained(0, last, Arc::clone(&commit), Arc::clone(&answers));
        commit.queue.lock().push(first);
        assert!(
            commit.write_queued(&storage),
            "a full share written with more queued: hand on"
        );
        assert_eq!(storage.key_count(), MAX_ROUNDS as u64);
        assert!(!commit.write_queued(&storage), "the next writer finishes");
        assert_eq!(storage.key_count(), last as u64 + 1);
        for mut outcome in answers.lock().drain(..) {
            match outcome.try_recv() {
                Ok(Answer::Done(Ok(Ok(_)))) => {}
                _ => panic!("an update was not answered as applied"),
            }
        }
    }
}
