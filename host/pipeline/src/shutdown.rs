//! A stop request shared by every pipeline: set by SIGINT/SIGTERM, waited on by schedules,
//! idle polls and CPU budgets, from threads (`wait`) and from tasks (`sleep`).

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Shutdown(Arc<Inner>);

#[derive(Default)]
struct Inner {
    stopped: Mutex<bool>,
    /// Wakes threads in `wait`.
    wake: Condvar,
    /// Wakes tasks in `sleep`.
    notify: Notify,
}

impl Shutdown {
    pub fn trigger(&self) {
        *self.0.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0.wake.notify_all();
        self.0.notify.notify_waiters();
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks the thread up to `timeout`; true if shutdown was triggered meanwhile.
    pub fn wait(&self, timeout: Duration) -> bool {
        let guard = self.0.stopped.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .0
            .wake
            .wait_timeout_while(guard, timeout, |stopped| !*stopped)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }

    /// Sleeps the task up to `timeout`, holding no thread; true if shutdown was triggered
    /// meanwhile.
    pub async fn sleep(&self, timeout: Duration) -> bool {
        tokio::select! {
            () = self.triggered() => true,
            () = tokio::time::sleep(timeout) => self.is_triggered(),
        }
    }

    /// Returns once shutdown is triggered.
    pub async fn triggered(&self) {
        let notified = self.0.notify.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the flag is read: a trigger in between still wakes it.
        notified.as_mut().enable();
        if !self.is_triggered() {
            notified.await;
        }
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

    #[tokio::test]
    async fn trigger_wakes_a_sleeping_task() {
        let stop = Shutdown::default();
        let sleeper = tokio::spawn({
            let stop = stop.clone();
            async move { stop.sleep(Duration::from_secs(60)).await }
        });
        tokio::task::yield_now().await;
        let started = Instant::now();
        stop.trigger();
        assert!(sleeper.await.unwrap());
        assert!(started.elapsed() < Duration::from_secs(60));
        assert!(!Shutdown::default().sleep(Duration::from_millis(5)).await);
    }
}
