//! Background workers: every loop a node runs besides serving requests (gossip,
//! hinted handoff, anti-entropy, ownership handoff) is a [`Worker`], a value
//! holding its state in its fields (as Garage's workers do), with a name, a
//! wait for work and a round of work. The node starts a list of them
//! ([`Workers::start`]); each runs until the one shutdown signal, with a
//! status shown in `/admin/status`.
//!
//! [`Workers::stop`] cancels the signal and waits for every worker to return:
//! a worker waiting for work is dropped there; one in the middle of a round
//! finishes it first, unless it is [`Worker::INTERRUPTIBLE`].
//!
//! Workers are **supervised**: a worker that panics (a broken invariant) is
//! logged, counted in its status (`restarts`, exported to `/metrics`) and
//! started again, from a fresh value, after a short pause, instead of
//! silently ending for good.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;

use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// What a worker is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// Waiting for its next round.
    Idle,
    /// Doing a round of work.
    Busy,
    /// Returned (after shutdown).
    Stopped,
}

/// A worker's status, as `/admin/status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerStatus {
    /// The worker's name.
    pub name: &'static str,
    /// What it is doing.
    pub state: WorkerState,
    /// Rounds of work done.
    pub rounds: u64,
    /// Milliseconds since its last round started.
    pub last_round_ms_ago: Option<u64>,
    /// The last error it reported, if any.
    pub last_error: Option<String>,
    /// Times it panicked and was started again.
    pub restarts: u64,
}

struct Slot {
    status: WorkerStatus,
    round_started: Option<Instant>,
}

/// A worker's way to report its status.
#[derive(Clone)]
pub struct WorkerHandle(Arc<Mutex<Slot>>);

impl WorkerHandle {
    /// A round of work starts.
    pub fn busy(&self) {
        let mut s = self.0.lock();
        s.status.state = WorkerState::Busy;
        s.status.rounds += 1;
        s.round_started = Some(Instant::now());
    }

    /// The round is over; waiting for the next.
    pub fn idle(&self) {
        self.0.lock().status.state = WorkerState::Idle;
    }

    /// Something went wrong (the worker goes on).
    pub fn error(&self, e: impl std::fmt::Display) {
        self.0.lock().status.last_error = Some(e.to_string());
    }
}

/// What a worker does after a round of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// More work is waiting: the next round starts at once.
    AtOnce,
    /// The next round waits for work ([`Worker::wait_for_work`]).
    Wait,
    /// The worker is done for good (its node left the cluster).
    Done,
}

/// A background loop as a value: its state lives in its fields, and
/// [`Workers::start`] drives it — wait for work, do a round, again — until
/// shutdown or [`Next::Done`].
pub trait Worker: Send + 'static {
    /// Its name in `/admin/status`, `/metrics` and the logs.
    const NAME: &'static str;

    /// True if shutdown may drop a round in the middle (a long anti-entropy
    /// pass). A worker whose round writes state it must keep consistent
    /// (ownership handoff deletes partitions, then records it) finishes its
    /// round first.
    const INTERRUPTIBLE: bool = false;

    /// Waits until a round is due: a timer, or a sign that there is work.
    fn wait_for_work(&mut self) -> impl Future<Output = ()> + Send;

    /// One round of work, reported through `status` (busy, idle, errors).
    fn work(&mut self, status: &WorkerHandle) -> impl Future<Output = Next> + Send;
}

/// Drives `worker` until `shutdown` or until it is done.
async fn drive<W: Worker>(worker: &mut W, status: &WorkerHandle, shutdown: &CancellationToken) {
    let mut next = Next::Wait;
    loop {
        if next == Next::Wait {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = worker.wait_for_work() => {}
            }
        }
        next = if W::INTERRUPTIBLE {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                next = worker.work(status) => next,
            }
        } else {
            worker.work(status).await
        };
        if next == Next::Done || shutdown.is_cancelled() {
            return;
        }
    }
}

/// The node's workers.
pub struct Workers {
    slots: Mutex<Vec<Arc<Mutex<Slot>>>>,
    tasks: Mutex<tokio::task::JoinSet<()>>,
    shutdown: CancellationToken,
}

impl Default for Workers {
    fn default() -> Self {
        Workers {
            slots: Mutex::new(Vec::new()),
            tasks: Mutex::new(tokio::task::JoinSet::new()),
            shutdown: CancellationToken::new(),
        }
    }
}

impl Workers {
    /// Starts the worker `make` builds, and a fresh one after each panic.
    pub fn start<W: Worker>(&self, make: impl Fn() -> W + Send + Sync + 'static) {
        let make = Arc::new(make);
        self.spawn(W::NAME, move |status, shutdown| {
            let make = Arc::clone(&make);
            async move {
                let mut worker = make();
                drive(&mut worker, &status, &shutdown).await;
            }
        });
    }

    /// Starts worker `name`: `run(handle, shutdown)`, again after each panic.
    pub fn spawn<F, Fut>(&self, name: &'static str, run: F)
    where
        F: Fn(WorkerHandle, CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let slot = Arc::new(Mutex::new(Slot {
            status: WorkerStatus {
                name,
                state: WorkerState::Idle,
                rounds: 0,
                last_round_ms_ago: None,
                last_error: None,
                restarts: 0,
            },
            round_started: None,
        }));
        self.slots.lock().push(Arc::clone(&slot));
        let handle = WorkerHandle(Arc::clone(&slot));
        let shutdown = self.shutdown.clone();
        self.tasks.lock().spawn(async move {
            loop {
                let fut = run(handle.clone(), shutdown.clone());
                match AssertUnwindSafe(fut).catch_unwind().await {
                    Ok(()) => break,
                    Err(panic) => {
                        let why = panic_message(panic.as_ref());
                        tracing::error!(worker = name, panic = %why, "worker panicked; restarting it");
                        {
                            let mut s = slot.lock();
                            s.status.restarts += 1;
                            s.status.last_error = Some(format!("panicked: {why}"));
                            s.status.state = WorkerState::Idle;
                        }
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            }
            slot.lock().status.state = WorkerState::Stopped;
            tracing::debug!(worker = name, "worker stopped");
        });
    }

    /// Every worker's status.
    pub fn statuses(&self) -> Vec<WorkerStatus> {
        self.slots
            .lock()
            .iter()
            .map(|s| {
                let s = s.lock();
                let mut status = s.status.clone();
                status.last_round_ms_ago = s.round_started.map(|t| t.elapsed().as_millis() as u64);
                status
            })
            .collect()
    }

    /// Signals every worker to stop and waits until they all returned.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        let mut tasks = std::mem::take(&mut *self.tasks.lock());
        while tasks.join_next().await.is_some() {}
    }
}

/// The message a panic carried (`panic!` with a literal or a format).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// `interval_ms` ±10%, so nodes started together do not work in lockstep.
pub fn jittered(interval_ms: u64) -> Duration {
    let jitter = rand::random_range(0..=interval_ms / 5);
    Duration::from_millis(interval_ms - interval_ms / 10 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_that_panics_is_restarted_and_counted() {
        let workers = Workers::default();
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let r = Arc::clone(&runs);
        workers.spawn("flaky", move |h, shutdown| {
            let r = Arc::clone(&r);
            async move {
                h.busy();
                if r.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                    panic!("broken invariant");
                }
                h.idle();
                shutdown.cancelled().await;
            }
        });
        for _ in 0..50 {
            if runs.load(std::sync::atomic::Ordering::SeqCst) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let s = &workers.statuses()[0];
        assert_eq!(s.restarts, 2);
        assert_eq!(s.state, WorkerState::Idle);
        assert!(
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("broken invariant"))
        );
        workers.stop().await;
    }

    #[tokio::test]
    async fn workers_report_their_rounds_and_stop_on_the_signal() {
        let workers = Workers::default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        workers.spawn("counter", move |h, shutdown| {
            let tx = tx.lock().expect("lock").take();
            async move {
                h.busy();
                h.error("first round failed");
                h.idle();
                if let Some(tx) = tx {
                    let _ = tx.send(());
                }
                shutdown.cancelled().await;
            }
        });
        rx.await.expect("ran a round");
        let s = &workers.statuses()[0];
        assert_eq!(
            (s.name, s.state, s.rounds),
            ("counter", WorkerState::Idle, 1)
        );
        assert_eq!(s.last_error.as_deref(), Some("first round failed"));
        workers.stop().await;
        assert_eq!(workers.statuses()[0].state, WorkerState::Stopped);
    }
}
