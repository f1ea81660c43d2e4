//! CPU accounting between batches: how much CPU each side's calls took (thread CPU time,
//! so waiting for I/O or a poll's wait does not count), and a budget that may make the
//! pipeline wait before its next batch. This is how a tenant's CPU share is enforced: a
//! call is bounded by its epoch deadline, the calls together by the budget.

use crate::shutdown::Shutdown;
use std::time::Duration;

/// Shares CPU among pipelines. `charge` is told what a batch cost and may block (until
/// `stop`) to keep the pipelines that share the budget within it.
pub trait CpuBudget: Send + Sync + std::fmt::Debug {
    fn charge(&self, used: Duration, stop: &Shutdown);
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
}
