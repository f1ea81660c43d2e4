//! A stop request shared by every pipeline: set by SIGINT/SIGTERM, waited on by schedules.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
pub struct Shutdown(Arc<(Mutex<bool>, Condvar)>);

impl Shutdown {
    pub fn trigger(&self) {
        let (flag, wake) = &*self.0;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps up to `timeout`; true if shutdown was triggered meanwhile.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (flag, wake) = &*self.0;
        let guard = flag.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = wake
            .wait_timeout_while(guard, timeout, |stopped| !*stopped)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn trigger_wakes_a_waiter() {
        let stop = Shutdown::default();
        let waiter = stop.clone();
        let started = Instant::now();
        let handle = std::thread::spawn(move || waiter.wait(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(20));
        stop.trigger();
        assert!(handle.join().unwrap());
        assert!(started.elapsed() < Duration::from_secs(60));
        assert!(stop.is_triggered());
    }

    #[test]
    fn wait_times_out_untriggered() {
        assert!(!Shutdown::default().wait(Duration::from_millis(5)));
    }
}
