//! Durable checkpoints: one row per pipeline, each commit atomic and durable when it returns.
//!
//! - `sqlite`: the embedded default, `weir.db` in the state directory (one process).
//! - `postgres`: shared by the nodes of a cluster, every commit fenced by the epoch under
//!   which its node took the pipeline.
//!
//! The store keeps what it is given; deciding *when* a checkpoint may be committed (only
//! after the sink flushed) is the delivery loop's job, which is why [`CheckpointStore::commit`]
//! is fed by the pipeline crate's `Durable` values rather than by plugins.

#[cfg(feature = "postgres")]
pub mod postgres;
mod sqlite;

use anyhow::Result;
use std::time::{SystemTime, UNIX_EPOCH};

pub use sqlite::{SqliteCheckpoints, lock_state_dir, open_database};

/// A commit refused because another owner took the pipeline since this one started: the
/// run that tried it must stop at once, and its source must not be acknowledged.
#[derive(Debug, thiserror::Error)]
#[error("pipeline `{pipeline}` is now owned by {current}: this run (epoch {epoch}) is fenced out")]
pub struct Fenced {
    pub pipeline: String,
    pub epoch: u64,
    /// Who owns it now, as the store says ("no one" when it was deleted).
    pub current: String,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A committed position and when it was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Opaque to the host: whatever the source returned with its batch (JSON by convention).
    pub checkpoint: String,
    /// Milliseconds since the Unix epoch.
    pub committed_at_ms: i64,
    /// How many commits this pipeline has had.
    pub commits: i64,
}

/// Who commits: the node and the epoch (generation) under which it owns the pipeline. A
/// store shared between nodes refuses a commit from an owner that is no longer current;
/// one process's own store has a single owner and ignores it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    pub node: String,
    pub epoch: u64,
}

/// Where committed positions live: the delivery loop and the supervisor use this, and a
/// shared store (for a cluster) implements it beside the embedded default.
pub trait CheckpointStore: Send + Sync {
    /// The pipeline's committed position, if it has one.
    fn load(&self, pipeline: &str) -> Result<Option<Committed>>;
    /// Replaces the pipeline's checkpoint if `owner` still owns it; durable when this returns.
    /// A commit from an owner that is no longer current fails with [`Fenced`] in its chain.
    fn commit(&self, pipeline: &str, checkpoint: &str, owner: &Owner) -> Result<()>;
    /// Makes `node` the pipeline's owner under a new epoch, fencing out every earlier
    /// owner's commits. One process's own store has no one to fence: it returns epoch 0.
    fn acquire(&self, _pipeline: &str, node: &str) -> Result<Owner> {
        Ok(Owner {
            node: node.to_string(),
            epoch: 0,
        })
    }
    /// Says `owner`'s run of the pipeline has ended (it commits nothing more), so a node
    /// waiting to take it over need not wait any longer.
    fn release(&self, _pipeline: &str, _owner: &Owner) -> Result<()> {
        Ok(())
    }
    /// Who owns the pipeline now, in a store shared between nodes.
    fn owner(&self, _pipeline: &str) -> Result<Option<Owner>> {
        Ok(None)
    }
    /// Forgets the pipeline's position: its next run starts from the beginning.
    fn reset(&self, pipeline: &str) -> Result<bool>;
    /// Every pipeline's committed position, by name.
    fn list(&self) -> Result<Vec<(String, Committed)>>;
    /// Moves the pipeline's position, as an operator asks (`weir checkpoint set|reset`):
    /// `checkpoint`, or none to start from the beginning. Until the pipeline's next commit
    /// the move is remembered ([`Self::moved`]), so that it beats the checkpoint a
    /// transactional sink keeps with its data.
    fn move_to(&self, pipeline: &str, _checkpoint: Option<&str>) -> Result<()> {
        anyhow::bail!("this checkpoint store cannot move pipeline `{pipeline}`")
    }
    /// An operator's move not yet followed by a commit.
    fn moved(&self, _pipeline: &str) -> Result<Option<Moved>> {
        Ok(None)
    }
    /// Appends to the pipeline's history what an operator did to it: `action` and its
    /// `detail` (JSON). [`Self::move_to`] records its own move; [`Self::reset`], which
    /// forgets a pipeline, forgets its history too. The last [`HISTORY_KEPT`] are kept.
    fn record(&self, pipeline: &str, _action: &str, _detail: &str) -> Result<()> {
        anyhow::bail!("this checkpoint store keeps no history for pipeline `{pipeline}`")
    }
    /// The pipeline's history, oldest first.
    fn history(&self, _pipeline: &str) -> Result<Vec<Event>> {
        Ok(Vec::new())
    }
}

/// How many entries of a pipeline's history are kept: the oldest go first.
pub const HISTORY_KEPT: i64 = 1000;

/// One entry of a pipeline's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// What was done: `created`, `updated`, `paused`, `resumed`, `upgraded`, `checkpoint set`,
    /// `checkpoint reset`.
    pub action: String,
    /// What it changed, as JSON (for a move: `{"from": …, "to": …}`).
    pub detail: String,
}

/// Where an operator moved a pipeline, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// None: from the beginning.
    pub checkpoint: Option<String>,
    pub moved_at_ms: i64,
}
