//! `weir test`'s inputs: the connector as a pipeline side would hold it, from files.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use weir_conformance::Target;
use weir_pipeline::{FileResolver, PipelineSpec, Side};
use weir_runtime::io::ClientPolicy;
use weir_runtime::{Runtime, World};

/// A JSON file, or TOML by its extension.
fn document(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    crate::client::document(path, &text, false)
}

/// The plugin with its config, and a sandbox made from the grants and limits exactly as
/// `weir run` makes a pipeline side's (the same checks, the same anchoring of paths).
pub fn target(
    runtime: &Runtime,
    plugin: &Path,
    config: &Path,
    grants: Option<&Path>,
    (memory, call_timeout): (bytesize::ByteSize, Duration),
    policy: &ClientPolicy,
) -> Result<Target> {
    let plugin = plugin
        .canonicalize()
        .with_context(|| format!("plugin {} not found", plugin.display()))?;
    let world = runtime.load(&plugin)?.world;
    let config = document(config)?;
    if !config.is_object() {
        bail!("the config must be a JSON object");
    }
    let (grants, base) = match grants {
        Some(path) => (
            document(path)?,
            path.canonicalize()?.parent().unwrap().to_path_buf(),
        ),
        None => (json!({}), std::env::current_dir()?),
    };
    let side = json!({
        "plugin": plugin,
        "config": config,
        "grants": grants,
    });
    // The other sides only make the spec whole; they are never loaded.
    let other = json!({ "plugin": plugin });
    let limits = json!({
        "memory": memory.to_string(),
        "call_timeout": humantime::format_duration(call_timeout).to_string(),
    });
    let mut spec = json!({ "name": "weir-test", "source": other, "sink": other, "limits": limits });
    let at = match world {
        World::BatchSource | World::StreamSource => {
            spec["source"] = side;
            Side::Source
        }
        World::Sink => {
            spec["sink"] = side;
            Side::Sink
        }
        World::Transform => {
            spec["transforms"] = json!([side]);
            Side::Transform(0)
        }
    };
    let spec = PipelineSpec::from_json(spec)?;
    let r = FileResolver::new(&base, std::slice::from_ref(&spec), policy);
    let pipeline = weir_pipeline::resolve(&spec, &r)?;
    let endpoint = pipeline.endpoint(at).clone();
    Ok(Target {
        plugin,
        config: endpoint.config,
        sandbox: endpoint.sandbox,
    })
}

/// Record values, one per non-empty line.
pub fn sample(path: &Path) -> Result<Vec<Vec<u8>>> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let lines: Vec<Vec<u8>> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    if lines.is_empty() {
        bail!("{} holds no records", path.display());
    }
    Ok(lines)
}
