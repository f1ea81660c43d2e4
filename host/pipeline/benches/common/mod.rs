//! What the file → file benches share: the pipeline they run, and one timed run of it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_pipeline::{PipelineFile, RunOptions, Shutdown, Summary};
use weir_runtime::Runtime;

/// `$WEIR_BENCH_RECORDS`, or a million.
pub fn records() -> usize {
    std::env::var("WEIR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Where `scripts/build.sh` puts the plugins.
pub fn plugins() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/plugins")
}

/// A pipeline file: file-source reading `data` → `transforms` (`[[pipeline.transforms]]`
/// tables, or nothing) → file-sink writing `out/out.jsonl`, in batches of `batch`, with
/// `settings` (more `[[pipeline]]` lines) and its state in `state-<tag>`.
pub fn file_pipeline(
    plugins: &Path,
    tag: &str,
    batch: usize,
    settings: &str,
    data: &str,
    transforms: &str,
    out: &Path,
) -> String {
    format!(
        r#"
state_dir = "state-{tag}"
[[pipeline]]
name = "bench"
batch_size = {batch}
{settings}
[pipeline.source]
plugin = "{source}"
config = {{ dir = "/data" }}
grants.dirs = [{{ host = "{data}", guest = "/data" }}]
{transforms}
[pipeline.sink]
plugin = "{sink}"
config = {{ dir = "/out", file = "out.jsonl" }}
grants.dirs = [{{ host = "{out}", guest = "/out", write = true }}]
"#,
        source = plugins.join("file_source.wasm").display(),
        sink = plugins.join("file_sink.wasm").display(),
        out = out.display(),
    )
}

/// Writes `text` to `dir/bench-<tag>.toml` and runs it once; how long it took, and the
/// summary of its one pipeline (which must have read `records`).
pub fn run_once(
    runtime: &Arc<Runtime>,
    dir: &Path,
    tag: &str,
    text: &str,
    records: usize,
) -> (Duration, Summary) {
    let path = dir.join(format!("bench-{tag}.toml"));
    std::fs::write(&path, text).unwrap();
    let file = PipelineFile::load(&path).unwrap();
    let started = Instant::now();
    let mut summaries = weir_runtime::block_on(weir_pipeline::run(
        runtime,
        &file,
        &RunOptions {
            once: true,
            ..RunOptions::default()
        },
        &Shutdown::default(),
    ))
    .unwrap();
    let took = started.elapsed();
    let summary = summaries.remove(0);
    assert_eq!(
        summary.records_read as usize, records,
        "{:?}",
        summary.error
    );
    (took, summary)
}
