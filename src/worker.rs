//! Background workers: every loop a node runs besides serving requests (gossip,
//! hinted handoff, anti-entropy, ownership handoff) is a named worker with a
//! status shown in `/admin/status`, and one shutdown signal for all of them.
//!
//! A worker is an async function given a [`WorkerHandle`], to say when it is
//! busy or idle and what last went wrong, and a [`CancellationToken`] it must
//! return promptly after. [`Workers::stop`] cancels the token and waits for
//! every worker to return.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

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
    /// Starts worker `name`: `run(handle, shutdown)`.
    pub fn spawn<F, Fut>(&self, name: &'static str, run: F)
    where
        F: FnOnce(WorkerHandle, CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let slot = Arc::new(Mutex::new(Slot {
            status: WorkerStatus {
                name,
                state: WorkerState::Idle,
                rounds: 0,
                last_round_ms_ago: None,
                last_error: None,
            },
            round_started: None,
        }));
        self.slots.lock().push(Arc::clone(&slot));
        let handle = WorkerHandle(Arc::clone(&slot));
        let fut = run(handle, self.shutdown.clone());
        self.tasks.lock().spawn(async move {
            fut.await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn workers_report_their_rounds_and_stop_on_the_signal() {
        let workers = Workers::default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        workers.spawn("counter", |h, shutdown| async move {
            h.busy();
            h.error("first round failed");
            h.idle();
            let _ = tx.send(());
            shutdown.cancelled().await;
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
