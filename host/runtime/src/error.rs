//! Why a call into a guest failed, in terms the pipeline can act on.

use std::fmt;

/// What kind of failure: the pipeline retries `Transient` and stops on the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestErrorKind {
    /// The connector rejected its config.
    Config,
    /// The connector reported a passing failure.
    Transient,
    /// The connector reported a failure it cannot recover from.
    Fatal,
    /// The guest trapped (a panic, an unreachable, a stack overflow); the instance is dead.
    Trap,
    /// The guest ran past its call deadline and was interrupted.
    Deadline,
    /// The guest tried to grow its memory past the limit.
    Memory,
}

#[derive(Debug, Clone)]
pub struct GuestError {
    pub kind: GuestErrorKind,
    pub plugin: String,
    /// The WIT function that failed, e.g. `batch-read.reader.next`.
    pub call: &'static str,
    pub message: String,
}

impl GuestError {
    pub fn is_transient(&self) -> bool {
        self.kind == GuestErrorKind::Transient
    }

    /// After a trap, deadline or memory stop, the instance cannot be entered again.
    pub fn kills_instance(&self) -> bool {
        matches!(
            self.kind,
            GuestErrorKind::Trap | GuestErrorKind::Deadline | GuestErrorKind::Memory
        )
    }
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            GuestErrorKind::Config => "rejected its config",
            GuestErrorKind::Transient => "failed (transient)",
            GuestErrorKind::Fatal => "failed",
            GuestErrorKind::Trap => "trapped",
            GuestErrorKind::Deadline => "ran past its deadline",
            GuestErrorKind::Memory => "ran out of its memory limit",
        };
        write!(
            f,
            "plugin `{}` {what} in {}: {}",
            self.plugin, self.call, self.message
        )
    }
}

impl std::error::Error for GuestError {}
