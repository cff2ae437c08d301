//! The threads that serve connections: each runs its own single-threaded tokio runtime, and a
//! connection stays on one of them for its whole life, together with the upstream
//! connections its requests use (see [`crate::upstream`]).
//!
//! Why not one work-stealing runtime: a proxied request is a chain of small hand-offs (client
//! socket, handler, the upstream connection's task, and back), and a work-stealing runtime
//! lets each hop land on another thread, paid for with an eventfd or futex wake-up and a cold
//! cache. Profiles of the benchmark showed those wake-ups as the largest single cost after the
//! sockets themselves; with every hop on one thread they are gone (numbers in README,
//! "Benchmark"). The price: connections are not rebalanced once placed, which suits a proxy
//! whose work per connection is small and alike.

use std::cell::Cell;
use std::io;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

thread_local! {
    /// Which worker the current thread is; 0 on every other thread.
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The worker running on this thread (0 outside the workers), to pick per-worker resources.
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

/// Running worker threads. Dropping this stops them: each runtime ends, cancelling what is
/// left on it, so callers drain their connections first.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    /// Held only to be dropped: a closed channel tells its worker to stop.
    _stops: Vec<oneshot::Sender<()>>,
    next: AtomicUsize,
}

impl Workers {
    /// Starts `count` worker threads.
    pub fn start(count: NonZeroUsize) -> io::Result<Self> {
        let mut handles = Vec::with_capacity(count.get());
        let mut stops = Vec::with_capacity(count.get());
        for index in 0..count.get() {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            handles.push(runtime.handle().clone());
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("switchboard-worker-{index}"))
                .spawn(move || {
                    INDEX.with(|slot| slot.set(index));
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
        }
        Ok(Self {
            handles,
            _stops: stops,
            next: AtomicUsize::new(0),
        })
    }

    /// The runtime of the worker whose turn it is (round robin).
    pub fn next(&self) -> &Handle {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        &self.handles[turn % self.handles.len()]
    }
}

/// One worker per available core (or one, when the count cannot be read).
pub fn default_count() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}
