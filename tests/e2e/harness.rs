//! The harness itself: a process that never exits fails its test in bounded time.

use crate::fixtures::process::exit_within;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn a_process_that_does_not_exit_fails_the_wait_and_is_killed() {
    let log = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(log.path(), "the log line").unwrap();
    let mut child = Command::new("sleep").arg("600").spawn().unwrap();
    let pid = child.id();
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        exit_within(&mut child, Duration::from_millis(200), log.path())
    }));
    let message = *waited.unwrap_err().downcast::<String>().unwrap();
    assert!(
        message.contains(&format!("pid {pid} still running")),
        "{message}"
    );
    assert!(message.contains("the log line"), "{message}");
    assert!(child.try_wait().unwrap().is_some(), "killed");
}

#[test]
fn a_process_that_exits_in_time_gives_its_status() {
    let mut child = Command::new("true").spawn().unwrap();
    let status = exit_within(
        &mut child,
        Duration::from_secs(60),
        Path::new("/nonexistent"),
    );
    assert!(status.success());
}
