//! Group commit of a coordinator's own writes.
//!
//! Every write this node coordinates first updates the key's object here: a
//! read-modify-write under the key's lock stripe, then a write-ahead-log
//! append. Done by each request on its async worker, two concurrent writes
//! meet in RocksDB's write group, where one thread appends for both while the
//! other spins and calls `sched_yield` until it is done: the profile of a
//! single-node PUT run showed 1.1 to 2.3 `sched_yield` per PUT, and a worker
//! doing nothing while it waits.
//!
//! [`GroupCommit`] combines them instead (flat combining): a write queues its
//! update and, if nobody is writing, becomes the writer. The writer takes what
//! is queued, applies it as one [`Storage::try_update_batch`] (one log append
//! for the lot), answers every owner and looks again. A write that finds the
//! writer busy leaves its update queued and awaits its answer, so its worker
//! goes on serving other connections meanwhile.
//!
//! Nothing is acknowledged before its batch is in the log (the answer is sent
//! after the write returns), and nothing queued is left behind: every caller
//! that queues tries to become the writer, and a writer that leaves looks at
//! the queue once more after giving up the role. With `sync_writes` the
//! coordinator does not come here (see `Coordinator::update_local`).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use dynakv_storage::{BatchUpdate, ObjectStore, Storage, UpdateOutcome, Updated};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::oneshot;

/// At most this many updates per storage write, and no more once their
/// values add up to [`MAX_BATCH_BYTES`]: a bigger batch holds more lock
/// stripes for longer, and keeps its writer from its own request.
const MAX_BATCH: usize = 64;
/// See [`MAX_BATCH`].
const MAX_BATCH_BYTES: usize = 4 << 20;

/// How many batches one writer writes before handing the role on. The writer
/// is some request's task: its own request waits while it writes for others.
const MAX_ROUNDS: usize = 4;

/// Why a queued update did not apply: its closure refused, or panicked (the
/// panic goes back to its owner's task, as if the owner had applied it).
enum Refusal<E> {
    Refused(E),
    Panicked(Box<dyn Any + Send>),
}

/// An update waiting for the writer, and where its outcome goes.
struct Queued<E> {
    update: BatchUpdate<Refusal<E>>,
    /// The bytes of the key and value it writes.
    bytes: usize,
    answer: oneshot::Sender<Answer<E>>,
}

/// What the writer tells an update's owner.
enum Answer<E> {
    /// Applied (or refused, or failed) as part of a batch.
    Done(UpdateOutcome<Refusal<E>>),
    /// Not applied: its key's lock stripe was held by another writer (a
    /// replica write, a transfer, a load). The owner applies it alone,
    /// waiting for the lock as a single write always did, so the writer never
    /// waits while others queue behind it.
    Alone(BatchUpdate<Refusal<E>>),
    /// The storage call panicked outside any closure: nothing is known of the
    /// batch.
    Lost,
}

/// Combines concurrent single-key updates into shared storage writes.
pub struct GroupCommit<E> {
    queue: Mutex<Vec<Queued<E>>>,
    /// Held by the caller writing the queue.
    writer: Mutex<()>,
    /// Counts the storage writes made.
    batches: Counter,
    /// Runs once, the next time a writer is about to give up the role.
    #[cfg(test)]
    before_release: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl<E: Send + 'static> GroupCommit<E> {
    /// An empty queue; `batches` counts the storage writes it makes.
    pub fn new(batches: Counter) -> GroupCommit<E> {
        GroupCommit {
            queue: Mutex::new(Vec::new()),
            writer: Mutex::new(()),
            batches,
            #[cfg(test)]
            before_release: Mutex::new(None),
        }
    }

    /// Applies `update` as [`ObjectStore::update`] would, sharing the storage
    /// write with concurrent callers; `bytes` is about what it writes (key and
    /// value), to bound batches. If this caller wrote its share of
    /// batches for others and stopped with updates still queued, it calls
    /// `hand_off`, which must have [`GroupCommit::write_queued`] run again
    /// soon (spawn a task): their owners are waiting for a writer.
    pub async fn update(
        &self,
        storage: &Storage,
        update: BatchUpdate<E>,
        bytes: usize,
        hand_off: impl FnOnce(),
    ) -> UpdateOutcome<E> {
        let apply = update.apply;
        let update = BatchUpdate {
            key: update.key,
            apply: Box::new(move |object: &mut dynakv_versioning::Object| {
                match catch_unwind(AssertUnwindSafe(|| apply(object))) {
                    Ok(applied) => applied.map_err(Refusal::Refused),
                    Err(panic) => Err(Refusal::Panicked(panic)),
                }
            }),
        };
        let (answer, outcome) = oneshot::channel();
        self.queue.lock().push(Queued {
            update,
            bytes,
            answer,
        });
        if self.write_queued(storage) {
            hand_off();
        }
        let outcome = match outcome.await {
            Ok(Answer::Done(outcome)) => outcome,
            Ok(Answer::Alone(update)) => storage
                .update(&update.key, update.apply)
                .map(|r| r.map(|((), object)| object)),
            Ok(Answer::Lost) | Err(_) => {
                panic!("the group-commit writer panicked while writing this update's batch")
            }
        };
        match outcome {
            Ok(Ok(object)) => Ok(Ok(object)),
            Ok(Err(Refusal::Refused(e))) => Ok(Err(e)),
            Ok(Err(Refusal::Panicked(panic))) => resume_unwind(panic),
            Err(e) => Err(e),
        }
    }

    /// Writes what is queued unless another caller is writing (who then
    /// writes it). Returns true if it stopped after its share of batches
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
                let queued: Vec<Queued<E>> = {
                    let mut queue = self.queue.lock();
                    let mut bytes = 0;
                    let n = queue
                        .iter()
                        .take(MAX_BATCH)
                        .take_while(|q| {
                            // The first always goes, however large.
                            let fits = bytes == 0 || bytes + q.bytes <= MAX_BATCH_BYTES;
                            bytes += q.bytes.max(1);
                            fits
                        })
                        .count();
                    queue.drain(..n).collect()
                };
                if queued.is_empty() {
                    break;
                }
                self.write(storage, queued);
                rounds += 1;
            }
            #[cfg(test)]
            if let Some(hook) = self.before_release.lock().take() {
                hook();
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

    /// Applies one batch and answers its owners. Never unwinds: a panic in
    /// a closure is that update's outcome, and one in storage loses the
    /// batch (its owners fail) but not the queue.
    fn write(&self, storage: &Storage, queued: Vec<Queued<E>>) {
        let (updates, answers): (Vec<_>, Vec<_>) =
            queued.into_iter().map(|q| (q.update, q.answer)).unzip();
        let Ok(updated) = catch_unwind(AssertUnwindSafe(|| storage.try_update_batch(updates)))
        else {
            for answer in answers {
                let _ = answer.send(Answer::Lost);
            }
            return;
        };
        if updated
            .iter()
            .any(|u| matches!(u, Updated::Done(Ok(Ok(_)))))
        {
            self.batches.inc();
        }
        for (answer, updated) in answers.into_iter().zip(updated) {
            // An owner that went away (its client disconnected) no longer
            // needs the answer; the write stands, as it would had it been
            // applied alone.
            let _ = answer.send(match updated {
                Updated::Done(outcome) => Answer::Done(outcome),
                Updated::Busy(update) => Answer::Alone(update),
            });
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

    fn stored(storage: &Storage, key: &str) -> Vec<u8> {
        storage
            .get(key.as_bytes())
            .expect("get")
            .map(|o| values(&o))
            .unwrap_or_default()
    }

    /// Waits (bounded) until `done`, on the calling thread.
    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
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
                        .update(&storage, write(&key, i), 1, || panic!("no hand-off"))
                        .await;
                    (i, outcome)
                })
            })
            .collect();
        wait_for("ten queued updates", || commit.queue.lock().len() == 10);
        assert_eq!(
            storage.key_count(),
            0,
            "nothing written while the role is held"
        );
        drop(role);
        // The caller that next tries the role writes what was queued.
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
            let expected: Vec<u8> = (0..10).filter(|i| i % 3 == k).collect();
            assert_eq!(stored(&storage, &format!("k{k}")), expected);
        }
    }

    /// An update for the queue, without an owner task: its answer arrives on
    /// the receiver.
    fn queued(key: &str, value: u8, bytes: usize) -> (Queued<()>, oneshot::Receiver<Answer<()>>) {
        let (answer, outcome) = oneshot::channel();
        let apply = write(key, value).apply;
        let update = BatchUpdate {
            key: Bytes::copy_from_slice(key.as_bytes()),
            apply: Box::new(move |o| apply(o).map_err(Refusal::Refused)),
        };
        (
            Queued {
                update,
                bytes,
                answer,
            },
            outcome,
        )
    }

    #[test]
    fn large_updates_do_not_share_a_batch_past_its_byte_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = open(dir.path());
        let batches = Counter::default();
        let commit = GroupCommit::new(batches.clone());
        // Sizes as announced, queued in this order; one is over the limit
        // alone, and still goes (alone).
        let sizes = [5 << 20, 3 << 20, 3 << 20, 2 << 20, 1 << 10, 1 << 10];
        let mut outcomes = Vec::new();
        for (i, bytes) in sizes.into_iter().enumerate() {
            let (q, outcome) = queued(&format!("k{i}"), i as u8, bytes);
            commit.queue.lock().push(q);
            outcomes.push(outcome);
        }
        assert!(!commit.write_queued(&storage));
        for mut outcome in outcomes {
            assert!(matches!(outcome.try_recv(), Ok(Answer::Done(Ok(Ok(_))))));
        }
        assert_eq!(
            batches.get(),
            4,
            "[5 MiB], [3 MiB], [3 MiB], [2 MiB, 1 KiB, 1 KiB]"
        );
    }

    #[test]
    fn a_writer_hands_on_after_its_share_and_nothing_queued_is_left_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = open(dir.path());
        let commit = Arc::new(GroupCommit::<()>::new(Counter::default()));
        type Answers = Arc<Mutex<Vec<oneshot::Receiver<Answer<()>>>>>;
        let answers: Answers = Arc::default();
        // Each update, when applied, queues the next: a stream of writes
        // arriving while the writer writes, longer than its share.
        fn chained(
            i: usize,
            last: usize,
            commit: Arc<GroupCommit<()>>,
            answers: Answers,
        ) -> Queued<()> {
            let (answer, outcome) = oneshot::channel();
            answers.lock().push(outcome);
            let apply = write(&format!("k{i}"), i as u8).apply;
            let update = BatchUpdate {
                key: Bytes::from(format!("k{i}")),
                apply: Box::new(move |o| {
                    if i < last {
                        let next = chained(i + 1, last, Arc::clone(&commit), Arc::clone(&answers));
                        commit.queue.lock().push(next);
                    }
                    apply(o).map_err(Refusal::Refused)
                }),
            };
            Queued {
                update,
                bytes: 1,
                answer,
            }
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
            assert!(
                matches!(outcome.try_recv(), Ok(Answer::Done(Ok(Ok(_))))),
                "an update was not answered as applied"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_update_of_a_key_another_writer_holds_is_applied_alone_without_stalling_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = open(dir.path());
        let commit = Arc::new(GroupCommit::<()>::new(Counter::default()));
        // A replica write holds `busy`'s lock stripe until told to finish.
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (holding, held) = std::sync::mpsc::channel::<()>();
        let holder = {
            let storage = Arc::clone(&storage);
            std::thread::spawn(move || {
                storage
                    .update(b"busy", |o| -> Result<(), ()> {
                        holding.send(()).expect("test waits");
                        released.recv().expect("test releases");
                        (write("busy", 1).apply)(o)
                    })
                    .expect("storage")
                    .expect("applied");
            })
        };
        held.recv().expect("holder started");
        let alone = {
            let (commit, storage) = (Arc::clone(&commit), Arc::clone(&storage));
            tokio::spawn(async move { commit.update(&storage, write("busy", 2), 1, || {}).await })
        };
        // Meanwhile other keys are written: nobody waits for the busy stripe
        // holding the writer role.
        for i in 0..5u8 {
            let key = format!("free{i}");
            let outcome = tokio::time::timeout(
                Duration::from_secs(10),
                commit.update(&storage, write(&key, i), 1, || {}),
            )
            .await
            .expect("a free key is written while another is busy");
            assert!(outcome.expect("storage").is_ok());
            assert_eq!(stored(&storage, &key), [i]);
        }
        assert!(
            !alone.is_finished(),
            "the busy key's update waits for its lock"
        );
        release.send(()).expect("holder waits");
        holder.join().expect("holder");
        let object = alone
            .await
            .expect("task")
            .expect("storage")
            .expect("applied");
        assert_eq!(
            values(&object),
            [1, 2],
            "applied after the holder, not over it"
        );
        assert_eq!(stored(&storage, "busy"), [1, 2]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_update_fails_its_own_request_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = open(dir.path());
        let commit = Arc::new(GroupCommit::<()>::new(Counter::default()));
        let role = commit.writer.lock();
        let spawn = |update: BatchUpdate<()>| {
            let (commit, storage) = (Arc::clone(&commit), Arc::clone(&storage));
            tokio::spawn(async move { commit.update(&storage, update, 1, || {}).await })
        };
        // Spawned tasks may run in any order: each is queued before the next
        // is spawned, so the queue's order is the test's.
        let before = spawn(write("k", 1));
        wait_for("one queued update", || commit.queue.lock().len() == 1);
        let panics = spawn(BatchUpdate {
            key: Bytes::from_static(b"k"),
            apply: Box::new(|o: &mut Object| {
                (write("k", 9).apply)(o)?;
                panic!("a bug in an update")
            }),
        });
        wait_for("two queued updates", || commit.queue.lock().len() == 2);
        let after = spawn(write("k", 3));
        wait_for("three queued updates", || commit.queue.lock().len() == 3);
        drop(role);
        assert!(!commit.write_queued(&storage));
        let panic = panics.await.expect_err("the panic reaches its owner");
        assert!(panic.is_panic());
        assert_eq!(
            values(
                &before
                    .await
                    .expect("task")
                    .expect("storage")
                    .expect("applied")
            ),
            [1]
        );
        assert_eq!(
            values(
                &after
                    .await
                    .expect("task")
                    .expect("storage")
                    .expect("applied")
            ),
            [1, 3]
        );
        assert_eq!(
            stored(&storage, "k"),
            [1, 3],
            "nothing of the panicking update"
        );
    }

    #[test]
    fn an_update_queued_as_the_writer_leaves_is_written_by_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = open(dir.path());
        let commit = Arc::new(GroupCommit::<()>::new(Counter::default()));
        let (late, mut outcome) = queued("late", 2, 1);
        // The narrowest race: a caller queues after the writer's last look at
        // the queue but before it gives up the role, so its own try finds
        // the role taken.
        *commit.before_release.lock() = Some(Box::new({
            let (commit, storage) = (Arc::clone(&commit), Arc::clone(&storage));
            move || {
                commit.queue.lock().push(late);
                assert!(!commit.write_queued(&storage), "the role is taken");
            }
        }));
        let (first, _first) = queued("first", 1, 1);
        commit.queue.lock().push(first);
        assert!(!commit.write_queued(&storage));
        assert!(
            matches!(outcome.try_recv(), Ok(Answer::Done(Ok(Ok(_))))),
            "the late update was written and answered"
        );
        assert_eq!(stored(&storage, "late"), [2]);
    }

    /// Many writers at once, each waiting for its update before sending the
    /// next: every update is written and answered (an update left queued
    /// with nobody to write it would hang its writer, bounded here by a
    /// timeout).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn under_contention_every_update_is_written_and_answered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = open(dir.path());
        let batches = Counter::default();
        let commit = Arc::new(GroupCommit::<()>::new(batches.clone()));
        let writers: Vec<_> = (0..8u8)
            .map(|w| {
                let (commit, storage) = (Arc::clone(&commit), Arc::clone(&storage));
                tokio::spawn(async move {
                    for i in 0..200u32 {
                        let key = format!("w{w}-{}", i % 50);
                        let hand_off = {
                            let (commit, storage) = (Arc::clone(&commit), Arc::clone(&storage));
                            move || {
                                tokio::spawn(async move {
                                    while commit.write_queued(&storage) {
                                        tokio::task::yield_now().await;
                                    }
                                });
                            }
                        };
                        tokio::time::timeout(
                            Duration::from_secs(10),
                            commit.update(&storage, write(&key, (i / 50) as u8), 1, hand_off),
                        )
                        .await
                        .unwrap_or_else(|_| panic!("update {w}/{i} never answered"))
                        .expect("storage")
                        .expect("applied");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
        assert_eq!(storage.key_count(), 8 * 50);
        for w in 0..8 {
            for k in 0..50 {
                assert_eq!(stored(&storage, &format!("w{w}-{k}")), [0, 1, 2, 3]);
            }
        }
        assert!(batches.get() <= 1600);
    }
}
