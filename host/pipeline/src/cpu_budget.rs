//! CPU accounting between batches: how much CPU each side's work took (thread CPU time,
//! counted only while the side's task is being polled, so waiting for I/O, a poll's wait
//! or another pipeline's turn on the same thread does not count), and a budget that may
//! make the pipeline wait before its next batch. This is how a tenant's CPU share is
//! enforced: a call is bounded by its epoch deadline, the calls together by the budget.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// Shares CPU among pipelines. `charge` is told what a batch cost and answers how long
/// the pipeline must wait to stay within the budget it shares.
pub trait CpuBudget: Send + Sync + std::fmt::Debug {
    fn charge(&self, used: Duration) -> Duration;
}

/// CPU time the calling thread has used.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel
    // knows. On failure `ts` stays zero, which only under-counts.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The CPU a future has used, on whichever threads polled it.
#[derive(Debug, Default, Clone)]
pub(crate) struct CpuClock(Arc<AtomicU64>);

impl CpuClock {
    /// `future`, with the CPU of each of its polls counted on this clock.
    pub(crate) fn meter<F: Future>(&self, future: F) -> Metered<F> {
        Metered {
            inner: Box::pin(future),
            clock: self.clone(),
        }
    }

    /// CPU used since the last call.
    pub(crate) fn lap(&self, last: &mut u64) -> Duration {
        let now = self.0.load(Ordering::Relaxed);
        let used = now.saturating_sub(*last);
        *last = now;
        Duration::from_nanos(used)
    }
}

pub(crate) struct Metered<F> {
    inner: Pin<Box<F>>,
    clock: CpuClock,
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let started = thread_cpu();
        let polled = self.inner.as_mut().poll(cx);
        let used = thread_cpu().saturating_sub(started);
        self.clock
            .0
            .fetch_add(used.as_nanos() as u64, Ordering::Relaxed);
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_counts_work_not_sleep() {
        let before = thread_cpu();
        std::thread::sleep(Duration::from_millis(50));
        let slept = thread_cpu() - before;
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let worked = thread_cpu() - before - slept;
        assert!(slept < Duration::from_millis(20), "sleeping used {slept:?}");
        assert!(worked > slept, "{worked:?} vs {slept:?}");
    }

    /// A task's clock counts its own polls: not its sleeps, not another task's work on
    /// the same thread.
    #[tokio::test(flavor = "current_thread")]
    async fn a_clock_counts_its_tasks_polls_only() {
        // Spins until the thread has used `ms` of CPU: on a loaded machine a spin timed
        // by the wall clock gets less CPU than it waited.
        let spin = |ms| {
            let started = thread_cpu();
            while thread_cpu() - started < Duration::from_millis(ms) {
                std::hint::black_box(0);
            }
        };
        let (mine, other) = (CpuClock::default(), CpuClock::default());
        let a = mine.meter(async move {
            spin(30);
            tokio::time::sleep(Duration::from_millis(60)).await;
            spin(30);
        });
        let b = other.meter(async move {
            tokio::task::yield_now().await;
            spin(80);
        });
        tokio::join!(a, b);
        let (mut x, mut y) = (0, 0);
        let (mine, other) = (mine.lap(&mut x), other.lap(&mut y));
        assert!(
            mine >= Duration::from_millis(60) && mine < Duration::from_millis(75),
            "{mine:?}"
        );
        assert!(other >= Duration::from_millis(80), "{other:?}");
    }
}
