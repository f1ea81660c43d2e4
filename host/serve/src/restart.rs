//! What the supervisor does when a run fails: a pure decision from how it failed, the
//! failures in a row before it and the tenant's quotas, so every rule has a unit test.

use crate::tenant::Quotas;
use std::time::Duration;

/// How a run failed, as far as restarting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    /// It committed at least one batch: the failures before it no longer count.
    pub progressed: bool,
    /// It would fail the same way again (a config the plugin rejects, a pipeline that
    /// cannot be built): restarting only delays saying so.
    pub permanent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Restart {
        after: Duration,
    },
    /// Stop, `failed`, until resumed.
    Stop {
        permanent: bool,
    },
}

/// The next step and the failures in a row after this run.
pub fn decide(how: Failed, failures_before: u32, quotas: &Quotas) -> (Next, u32) {
    let Failed {
        progressed,
        permanent,
    } = how;
    let failures = if progressed {
        1
    } else {
        failures_before.saturating_add(1)
    };
    if permanent || failures >= quotas.max_failures {
        return (Next::Stop { permanent }, failures);
    }
    let after = quotas
        .restart_backoff
        .saturating_mul(1 << (failures - 1).min(16));
    (Next::Restart { after }, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(max_failures: u32) -> Quotas {
        Quotas {
            max_failures,
            restart_backoff: Duration::from_secs(1),
            ..Quotas::default()
        }
    }

    const FAILED: Failed = Failed {
        progressed: false,
        permanent: false,
    };

    #[test]
    fn backoff_doubles_until_the_quota_of_failures_then_stops() {
        let q = quotas(4);
        let mut failures = 0;
        let mut steps = Vec::new();
        for _ in 0..4 {
            let (next, after) = decide(FAILED, failures, &q);
            steps.push(next);
            failures = after;
        }
        let secs = |s| Next::Restart {
            after: Duration::from_secs(s),
        };
        assert_eq!(
            steps,
            [secs(1), secs(2), secs(4), Next::Stop { permanent: false }]
        );
    }

    #[test]
    fn progress_resets_the_count() {
        let q = quotas(3);
        let progressed = Failed {
            progressed: true,
            permanent: false,
        };
        assert_eq!(
            decide(progressed, 2, &q),
            (
                Next::Restart {
                    after: Duration::from_secs(1)
                },
                1
            )
        );
    }

    #[test]
    fn a_permanent_failure_stops_at_once() {
        let permanent = Failed {
            progressed: false,
            permanent: true,
        };
        assert_eq!(
            decide(permanent, 0, &quotas(5)),
            (Next::Stop { permanent: true }, 1)
        );
    }

    #[test]
    fn the_backoff_does_not_overflow() {
        let q = Quotas {
            max_failures: u32::MAX,
            restart_backoff: Duration::from_secs(u64::MAX / 2),
            ..Quotas::default()
        };
        let (next, _) = decide(FAILED, 40, &q);
        assert!(matches!(next, Next::Restart { .. }));
    }
}
