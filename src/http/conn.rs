//! Per-connection supervision that costs nothing per request beyond two uncontended
//! atomics: graceful shutdown and the request-head timeout.
//!
//! hyper's own `header_read_timeout` creates, registers and drops a timer for every
//! request, and hyper-util's graceful shutdown polls a channel on every connection poll.
//! Here each connection has one timer that fires only when its deadline passes, and a
//! shutdown flag checked with one atomic load; its task's waker is registered once.
//!
//! Head timeout: a connection must complete a request head within the timeout counted
//! from its accept or from the end of its previous response (so it is also the keep-alive
//! idle timeout). A connection with a request in progress is never cut by it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// A connection that can be asked to finish its requests and close.
pub trait Graceful: Future {
    /// Starts the graceful shutdown.
    fn graceful_shutdown(self: Pin<&mut Self>);
}

#[derive(Debug)]
struct Inner {
    shutting_down: AtomicBool,
    next_key: AtomicU64,
    /// Waker of every live connection's task.
    wakers: Mutex<HashMap<u64, Waker>>,
    /// Notified when the last connection ends.
    drained: Notify,
    /// Origin of the millisecond timestamps in [`Activity`].
    epoch: Instant,
}

/// Tracks connections; [`Connections::shutdown`] drains them.
#[derive(Debug, Clone)]
pub struct Connections {
    inner: Arc<Inner>,
    head_timeout: Duration,
}

/// What one connection is doing, shared with its requests.
#[derive(Debug)]
pub struct Activity {
    active: AtomicU32,
    /// When the last request ended (or the connection opened), ms since the epoch.
    last_ms: AtomicU64,
    epoch: Instant,
}

impl Activity {
    /// Marks a request in progress until the returned guard is dropped.
    #[inline]
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    fn ms_since_epoch(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64
    }
}

/// A request in progress on a connection.
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl RequestGuard {
    fn end(&self, at: Instant) {
        self.0
            .last_ms
            .store(self.0.ms_since_epoch(at), Ordering::Relaxed);
        self.0.active.fetch_sub(1, Ordering::Release);
    }

    /// Ends the request at `at` (a time the caller already read, saving a clock read).
    pub fn finish(self, at: std::time::Instant) {
        self.end(Instant::from_std(at));
        std::mem::forget(self);
    }
}

impl Drop for RequestGuard {
    /// An abandoned request ends now.
    fn drop(&mut self) {
        self.end(Instant::now());
    }
}

impl Connections {
    /// A tracker whose connections must send a request head within `head_timeout`.
    pub fn new(head_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                shutting_down: AtomicBool::new(false),
                next_key: AtomicU64::new(0),
                wakers: Mutex::new(HashMap::new()),
                drained: Notify::new(),
                epoch: Instant::now(),
            }),
            head_timeout,
        }
    }

    /// Activity record for a newly accepted connection.
    pub fn activity(&self) -> Arc<Activity> {
        let a = Activity {
            active: AtomicU32::new(0),
            last_ms: AtomicU64::new(0),
            epoch: self.inner.epoch,
        };
        a.last_ms
            .store(a.ms_since_epoch(Instant::now()), Ordering::Relaxed);
        Arc::new(a)
    }

    /// Supervises a connection: closes it gracefully on shutdown and drops it when the
    /// head timeout passes. Must run in its own task (its waker is registered once).
    /// Resolves to `None` when the connection was cut by the timeout.
    pub fn watch<C: Graceful>(&self, conn: C, activity: Arc<Activity>) -> Watched<C> {
        let last = activity.last_ms.load(Ordering::Relaxed);
        Watched {
            conn: Box::pin(conn),
            inner: self.inner.clone(),
            key: None,
            signalled: false,
            timer: Box::pin(tokio::time::sleep_until(
                self.inner.epoch + Duration::from_millis(last) + self.head_timeout,
            )),
            timer_polled: false,
            head_timeout: self.head_timeout,
            activity,
        }
    }

    /// Tells every connection to finish its in-flight requests and close, then waits
    /// until all have.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        loop {
            let drained = self.inner.drained.notified();
            let wakers: Vec<Waker> = {
                let map = self.inner.wakers.lock().expect("wakers lock");
                if map.is_empty() {
                    return;
                }
                map.values().cloned().collect()
            };
            wakers.into_iter().for_each(Waker::wake);
            drained.await;
        }
    }

    /// Live connections.
    pub fn count(&self) -> usize {
        self.inner.wakers.lock().expect("wakers lock").len()
    }
}

/// A supervised connection.
pub struct Watched<C: Graceful> {
    conn: Pin<Box<C>>,
    inner: Arc<Inner>,
    key: Option<u64>,
    signalled: bool,
    timer: Pin<Box<Sleep>>,
    timer_polled: bool,
    head_timeout: Duration,
    activity: Arc<Activity>,
}

impl<C: Graceful> Watched<C> {
    /// Whether the head timeout has passed; re-arms the timer otherwise. The timer is
    /// polled only when armed or elapsed: in between it holds this task's waker (a task's
    /// waker does not change), so the common case is one atomic load.
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        if self.timer_polled && !self.timer.is_elapsed() {
            return false;
        }
        self.timer_polled = true;
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let deadline = if self.activity.active.load(Ordering::Acquire) > 0 {
                now + self.head_timeout
            } else {
                let last = self.activity.last_ms.load(Ordering::Relaxed);
                let deadline = self.inner.epoch + Duration::from_millis(last) + self.head_timeout;
                if deadline <= now {
                    return true;
                }
                deadline
            };
            self.timer.as_mut().reset(deadline);
        }
        false
    }
}

impl<C: Graceful> Future for Watched<C> {
    type Output = Option<C::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if !this.signalled {
            if this.key.is_none() {
                let key = this.inner.next_key.fetch_add(1, Ordering::Relaxed);
                this.inner
                    .wakers
                    .lock()
                    .expect("wakers lock")
                    .insert(key, cx.waker().clone());
                this.key = Some(key);
            }
            if this.inner.shutting_down.load(Ordering::SeqCst) {
                this.signalled = true;
                this.conn.as_mut().graceful_shutdown();
            }
        }
        if this.timed_out(cx) {
            return Poll::Ready(None);
        }
        this.conn.as_mut().poll(cx).map(Some)
    }
}

impl<C: Graceful> Drop for Watched<C> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut map = self.inner.wakers.lock().expect("wakers lock");
            map.remove(&key);
            if map.is_empty() {
                self.inner.drained.notify_waiters();
            }
        }
    }
}
