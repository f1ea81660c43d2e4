//! `weir checkpoint show|reset|set`: where a `weir run` pipeline resumes, for an operator to
//! see and move. The state directory's lock refuses them while a `weir run` holds it.

use crate::Output;
use anyhow::{Context, Result};
use weir_checkpoint::{CheckpointStore, SqliteCheckpoints};
use weir_pipeline::{Pipeline, PipelineFile};
use weir_runtime::Runtime;

pub fn show(file: &PipelineFile, pipelines: &[&Pipeline], output: Output) -> Result<()> {
    let store = SqliteCheckpoints::open(&file.state_dir)?;
    for p in pipelines {
        let committed = store.load(&p.name)?;
        let moved = store.moved(&p.name)?;
        let history = store.history(&p.name)?;
        match output {
            Output::Json => println!(
                "{}",
                serde_json::json!({
                    "pipeline": p.name,
                    "checkpoint": committed.as_ref().map(|c| &c.checkpoint),
                    "committed_at_ms": committed.as_ref().map(|c| c.committed_at_ms),
                    "commits": committed.as_ref().map_or(0, |c| c.commits),
                    "moved_at_ms": moved.map(|m| m.moved_at_ms),
                    "history": history.iter().map(|e| serde_json::json!({
                        "at_ms": e.at_ms,
                        "action": e.action,
                        "detail": serde_json::from_str::<serde_json::Value>(&e.detail)
                            .unwrap_or_else(|_| e.detail.clone().into()),
                    })).collect::<Vec<_>>(),
                })
            ),
            Output::Text => {
                let at = match (&committed, &moved) {
                    (_, Some(_)) => {
                        " (moved by an operator; the next run starts there)".to_string()
                    }
                    (Some(c), None) => format!(", {} commits", c.commits),
                    (None, None) => String::new(),
                };
                match committed {
                    Some(c) => println!("{}: {}{at}", p.name, c.checkpoint),
                    None => println!("{}: none, starts from the beginning{at}", p.name),
                }
                // The operators' moves, newest last.
                for e in &history {
                    let at = std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(e.at_ms.max(0) as u64);
                    println!(
                        "  {} {} {}",
                        humantime::format_rfc3339_seconds(at),
                        e.action,
                        e.detail
                    );
                }
            }
        }
    }
    Ok(())
}

/// Moves the pipeline to `checkpoint` (none: the beginning). A checkpoint is first given
/// to a fresh instance of the pipeline's source, which must open at it: a typo is refused
/// here, not at the next run.
pub async fn set(
    runtime: &Runtime,
    file: &PipelineFile,
    p: &Pipeline,
    checkpoint: Option<&str>,
) -> Result<()> {
    // Taken first: a running weir holds it, and nothing is opened against its sources.
    let store = SqliteCheckpoints::open(&file.state_dir)?;
    if let Some(checkpoint) = checkpoint {
        weir_pipeline::source_opens_at(runtime, p, checkpoint).await?;
    }
    store
        .move_to(&p.name, checkpoint)
        .with_context(|| format!("pipeline `{}`", p.name))
}
