//! A tenant's CPU share: a token bucket of CPU seconds, refilled at `share` cores and
//! drawn down by every batch of every pipeline of the tenant. A pipeline in debt waits
//! before its next batch until the bucket is back at zero.

use std::sync::Mutex;
use std::time::{Duration, Instant};
use weir_pipeline::CpuBudget;

/// CPU a tenant may bank while idle: half a second's worth of its share.
const BURST: f64 = 0.5;

#[derive(Debug)]
pub struct TenantCpu {
    /// Cores: 0.5 is half of one core.
    pub share: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// CPU seconds available; negative is debt.
    seconds: f64,
    at: Instant,
}

impl TenantCpu {
    pub fn new(share: f64) -> TenantCpu {
        TenantCpu {
            share,
            bucket: Mutex::new(Bucket {
                seconds: share * BURST,
                at: Instant::now(),
            }),
        }
    }

    /// Takes `used` from the bucket; how long the caller must wait to be out of debt.
    fn take(&self, used: Duration) -> Duration {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.at).as_secs_f64() * self.share;
        b.seconds = (b.seconds + refill).min(self.share * BURST) - used.as_secs_f64();
        b.at = now;
        if b.seconds < 0.0 {
            Duration::from_secs_f64(-b.seconds / self.share)
        } else {
            Duration::ZERO
        }
    }
}

impl CpuBudget for TenantCpu {
    fn charge(&self, used: Duration) -> Duration {
        self.take(used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debt_is_paid_back_at_the_share() {
        let cpu = TenantCpu::new(0.5);
        // The burst (0.25 s) covers the first 0.25 s of CPU.
        assert_eq!(cpu.take(Duration::from_millis(250)), Duration::ZERO);
        // 0.1 s more is debt: paid back at half a core, in about 0.2 s.
        let wait = cpu.take(Duration::from_millis(100));
        assert!(
            wait > Duration::from_millis(150) && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
    }
}
