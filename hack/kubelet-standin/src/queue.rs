// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The work queue: deduplicated, delayed Pod keys; one reconcile per key at a
//! time, a bounded number in flight, failures retried with backoff.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::{FutureExt, Stream, StreamExt};
use kube::runtime::scheduler::{ScheduleRequest, scheduler};
use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::PodKey;
use crate::reconcile::{self, Context, Error};

const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Reconciles that talk to the API server at the same time (a burst of 1000
/// machines must not open 1000 connections at once).
const CONCURRENCY: usize = 32;

/// Retry delay after `failures` consecutive failures (1, 2, ...).
pub fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

type Outcome = (PodKey, std::thread::Result<Result<Option<Duration>, Error>>);

pub struct Queue {
    ctx: Arc<Context>,
    requests: UnboundedSender<ScheduleRequest<PodKey>>,
    /// Keys whose time has come, each once however often it was enqueued.
    due: Pin<Box<dyn Stream<Item = PodKey> + Send>>,
    tasks: JoinSet<Outcome>,
    permits: Arc<Semaphore>,
    running: HashSet<PodKey>,
    /// Keys enqueued again while their reconcile ran.
    dirty: HashSet<PodKey>,
    failures: HashMap<PodKey, u32>,
}

impl Queue {
    pub fn new(ctx: Arc<Context>) -> Self {
        let (requests, schedule): (_, UnboundedReceiver<_>) = unbounded();
        Queue {
            ctx,
            requests,
            due: Box::pin(scheduler(schedule)),
            tasks: JoinSet::new(),
            permits: Arc::new(Semaphore::new(CONCURRENCY)),
            running: HashSet::new(),
            dirty: HashSet::new(),
            failures: HashMap::new(),
        }
    }

    /// Reconcile `key` after `after` (or earlier, if it is already due earlier).
    pub fn enqueue(&self, key: PodKey, after: Duration) {
        // The receiver lives in `self.due`: sending cannot fail.
        let _ = self.requests.unbounded_send(ScheduleRequest {
            message: key,
            run_at: Instant::now() + after,
        });
    }

    /// Waits for the next key that is due (only if `accept_due`: before that, keys
    /// stay queued) or the next finished reconcile, and handles it. Cancel safe.
    pub async fn run_next(&mut self, accept_due: bool) {
        tokio::select! {
            Some(key) = self.due.next(), if accept_due => self.start(key),
            Some(done) = self.tasks.join_next() => self.finish(done),
            else => std::future::pending().await,
        }
    }

    /// Starts reconciling `key`, or marks it to run again if it is running.
    fn start(&mut self, key: PodKey) {
        if !self.running.insert(key.clone()) {
            self.dirty.insert(key);
            return;
        }
        let (ctx, permits) = (self.ctx.clone(), self.permits.clone());
        self.tasks.spawn(async move {
            // The semaphore is never closed: acquiring cannot fail.
            let _permit = permits.acquire_owned().await;
            let result = AssertUnwindSafe(reconcile::reconcile(ctx, key.clone()))
                .catch_unwind()
                .await;
            (key, result)
        });
    }

    /// Logs the outcome and requeues the key: at once if it changed meanwhile,
    /// after the join delay, or after a backoff on failure.
    fn finish(&mut self, done: Result<Outcome, JoinError>) {
        let Ok((key, result)) = done else {
            error!("a reconcile task was cancelled");
            return;
        };
        self.running.remove(&key);
        let retry = match result {
            Ok(Ok(after)) => {
                self.failures.remove(&key);
                after
            }
            Ok(Err(e)) => {
                let failures = self.failures.entry(key.clone()).or_default();
                *failures = failures.saturating_add(1);
                let delay = backoff(*failures);
                let retry_in = humantime::format_duration(delay);
                match &e {
                    Error::Refused(_) => {
                        warn!(pod = %key, %retry_in, "not registering node {}: {e}", key.name)
                    }
                    Error::Waiting(_) => info!(pod = %key, %retry_in, "{e}"),
                    Error::Kube(..) => warn!(pod = %key, %retry_in, "{e}"),
                }
                Some(delay)
            }
            Err(_) => {
                error!(pod = %key, "reconcile panicked");
                Some(BACKOFF_MAX)
            }
        };
        if self.dirty.remove(&key) {
            self.enqueue(key, Duration::ZERO);
        } else if let Some(after) = retry {
            self.enqueue(key, after);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(8), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
