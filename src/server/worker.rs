//! Background workers: every loop a node runs besides serving requests (gossip,
//! hinted handoff, anti-entropy, ownership handoff) is a named worker with a
//! status shown in `/admin/status`, and one shutdown signal for all of them.
//!
//! A worker is an async function given a [`WorkerHandle`], to say when it is
//! busy or idle and what last went wrong, and a [`CancellationToken`] it must
//! return promptly after. [`Workers::stop`] cancels the token and waits for
//! every worker to return.
//!
//! Workers are **supervised**: a worker that panics (a broken invariant) is
//! logged, counted in its status (`restarts`, exported to `/metrics`) and
//! started again after a short pause, instead of silently ending for good.

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
                        let why = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
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

/// Waits `interval_ms` ±10% (so nodes started together do not work in
/// lockstep); returns false if `shutdown` came first.
pub async fn jittered_pause(shutdown: &CancellationToken, interval_ms: u64) -> bool {
    let jitter = rand::random_range(0..=interval_ms / 5);
    let wait = std::time::Duration::from_millis(interval_ms - interval_ms / 10 + jitter);
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
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
