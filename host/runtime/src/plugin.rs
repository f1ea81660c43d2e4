//! A plugin file, checked and compiled: which world it targets, ready to instantiate.

use crate::bindings::exports::weir::connector::{
    batch_read, connector, sink_transactional, sink_write, stream_read, transform_records,
};
use crate::runtime::Runtime;
use crate::sandbox::HostState;
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, InstancePre};

/// The kinds of plugin, one WIT world each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    BatchSource,
    StreamSource,
    Sink,
    /// A step between source and sink.
    Transform,
}

impl World {
    pub const ALL: [World; 4] = [
        World::BatchSource,
        World::StreamSource,
        World::Sink,
        World::Transform,
    ];

    pub fn name(self) -> &'static str {
        match self {
            World::BatchSource => "batch-source",
            World::StreamSource => "stream-source",
            World::Sink => "sink",
            World::Transform => "transform",
        }
    }

    /// The interface that makes a component this world.
    fn export(self) -> &'static str {
        match self {
            World::BatchSource => "weir:connector/batch-read@0.1.0",
            World::StreamSource => "weir:connector/stream-read@0.1.0",
            World::Sink => "weir:connector/sink-write@0.1.0",
            World::Transform => "weir:connector/transform-records@0.1.0",
        }
    }

    pub fn is_source(self) -> bool {
        matches!(self, World::BatchSource | World::StreamSource)
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

const CONNECTOR_EXPORT: &str = "weir:connector/connector@0.1.0";
/// Exported beside `sink-write` by a sink that stores checkpoints with its data.
const TRANSACTIONAL_EXPORT: &str = "weir:connector/sink-transactional@0.1.0";

/// How the component's machine code was obtained.
#[derive(Debug, Clone, Copy)]
pub enum Compilation {
    /// Deserialized from the on-disk cache.
    Cached(Duration),
    /// Compiled now (and written to the cache).
    Compiled(Duration),
}

/// Lookups of the exports, resolved once per plugin rather than per instance.
pub(crate) enum Exports {
    BatchSource(batch_read::GuestIndices),
    StreamSource(stream_read::GuestIndices),
    Sink(sink_write::GuestIndices),
    Transform(transform_records::GuestIndices),
}

pub struct Plugin {
    /// The file's name without `.wasm`, until the plugin's spec says better.
    pub name: String,
    pub path: PathBuf,
    pub world: World,
    pub compilation: Compilation,
    pub(crate) pre: InstancePre<HostState>,
    pub(crate) connector: connector::GuestIndices,
    pub(crate) exports: Exports,
    /// A sink's `sink-transactional` export, when it has one: exactly-once delivery.
    pub(crate) transactional: Option<sink_transactional::GuestIndices>,
}

impl Plugin {
    pub(crate) fn load(runtime: &Runtime, path: &Path) -> Result<Plugin> {
        let shown = path.display();
        let wasm = std::fs::read(path).with_context(|| format!("cannot read plugin {shown}"))?;
        check_header(&wasm).with_context(|| format!("{shown} is not a weir plugin"))?;

        let started = Instant::now();
        let (component, cached) = runtime
            .cache()
            .map(|cache| cache.load_or_compile(runtime.engine(), &wasm))
            .unwrap_or_else(|| Ok((Component::new(runtime.engine(), &wasm)?, false)))
            .with_context(|| format!("{shown} is not a valid WebAssembly component"))?;
        let elapsed = started.elapsed();
        let compilation = if cached {
            Compilation::Cached(elapsed)
        } else {
            Compilation::Compiled(elapsed)
        };

        // Imports first: a missing one is the more specific problem.
        let pre = runtime.linker().instantiate_pre(&component).map_err(|e| {
            anyhow!(
                "{shown} needs an import the weir host does not provide: {}",
                anyhow::Error::from(e)
            )
        })?;
        let world = world_of(runtime, &component)
            .with_context(|| format!("{shown} is not a weir plugin"))?;
        let connector = connector::GuestIndices::new(&pre)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!("{shown}: export {CONNECTOR_EXPORT} does not match the contract")
            })?;
        let mismatch = || {
            format!(
                "{shown}: export {} does not match the contract",
                world.export()
            )
        };
        let exports = match world {
            World::BatchSource => Exports::BatchSource(
                batch_read::GuestIndices::new(&pre)
                    .map_err(anyhow::Error::from)
                    .with_context(mismatch)?,
            ),
            World::StreamSource => Exports::StreamSource(
                stream_read::GuestIndices::new(&pre)
                    .map_err(anyhow::Error::from)
                    .with_context(mismatch)?,
            ),
            World::Sink => Exports::Sink(
                sink_write::GuestIndices::new(&pre)
                    .map_err(anyhow::Error::from)
                    .with_context(mismatch)?,
            ),
            World::Transform => Exports::Transform(
                transform_records::GuestIndices::new(&pre)
                    .map_err(anyhow::Error::from)
                    .with_context(mismatch)?,
            ),
        };
        let exports_transactional = component
            .component_type()
            .exports(runtime.engine())
            .any(|(name, _)| name == TRANSACTIONAL_EXPORT);
        let transactional = match (world, exports_transactional) {
            (World::Sink, true) => Some(
                sink_transactional::GuestIndices::new(&pre)
                    .map_err(anyhow::Error::from)
                    .with_context(|| {
                        format!(
                            "{shown}: export {TRANSACTIONAL_EXPORT} does not match the contract"
                        )
                    })?,
            ),
            (_, true) => bail!("{shown}: only a sink may export {TRANSACTIONAL_EXPORT}"),
            (_, false) => None,
        };
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| shown.to_string());
        Ok(Plugin {
            name,
            path: path.to_path_buf(),
            world,
            compilation,
            pre,
            connector,
            exports,
            transactional,
        })
    }

    /// What a sink promises: `exactly-once` when it commits checkpoints with its data,
    /// `at-least-once` otherwise (the batch in flight at a crash is written again). None
    /// for a source.
    pub fn delivery(&self) -> Option<&'static str> {
        match (self.world, self.transactional.is_some()) {
            (World::Sink, true) => Some("exactly-once"),
            (World::Sink, false) => Some("at-least-once"),
            _ => None,
        }
    }
}

/// Tells a core module from a component before handing the bytes to the compiler,
/// whose own message for that case is hard to act on.
fn check_header(wasm: &[u8]) -> Result<()> {
    const MAGIC: &[u8] = b"\0asm";
    if wasm.len() < 8 || &wasm[..4] != MAGIC {
        bail!("not a WebAssembly file (no `\\0asm` header)");
    }
    // Bytes 4..8: version and layer; layer 0 is a core module, layer 1 a component.
    if wasm[6..8] == [0, 0] {
        bail!(
            "a core WebAssembly module, not a component: build for `wasm32-wasip2`, \
             or wrap it with `wasm-tools component new`"
        );
    }
    Ok(())
}

fn world_of(runtime: &Runtime, component: &Component) -> Result<World> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(runtime.engine())
        .map(|(name, _)| name.to_string())
        .collect();
    let found: Vec<World> = World::ALL
        .into_iter()
        .filter(|w| exports.iter().any(|e| e == w.export()))
        .collect();
    let listed = || {
        if exports.is_empty() {
            "nothing".to_string()
        } else {
            exports.join(", ")
        }
    };
    match found.as_slice() {
        [] => bail!(
            "it exports none of {}, {}, {} or {} (it exports {})",
            World::BatchSource.export(),
            World::StreamSource.export(),
            World::Sink.export(),
            World::Transform.export(),
            listed()
        ),
        [world] if exports.iter().any(|e| e == CONNECTOR_EXPORT) => Ok(*world),
        [world] => bail!(
            "it exports {} but not {CONNECTOR_EXPORT}, which every connector must (it exports {})",
            world.export(),
            listed()
        ),
        _ => bail!("it exports more than one world's interface ({})", listed()),
    }
}
