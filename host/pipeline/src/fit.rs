//! Whether a plugin fits a side of a pipeline, and what a plugin says about itself: one
//! rule for `weir run`, `weir check`, `weir inspect` and every push and upgrade in
//! `weir serve`.

use crate::schema;
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use weir_runtime::{ConnectorSpec, Labels, Limits, Plugin, Runtime, Sandbox, World};

/// A place in a pipeline a plugin fills: the source, a transform (by index, from 0), the
/// sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Transform(usize),
    Sink,
}

impl Side {
    /// Every side of a pipeline with `transforms` transforms, in delivery order: the
    /// source, each transform, the sink.
    pub fn all(transforms: usize) -> Vec<Side> {
        let mut sides = vec![Side::Source];
        sides.extend((0..transforms).map(Side::Transform));
        sides.push(Side::Sink);
        sides
    }

    /// How messages name it: `source`, `transform #2` (counted from 1), `sink`.
    pub fn name(self) -> String {
        match self {
            Side::Transform(i) => format!("transform #{}", i + 1),
            other => other.role().to_string(),
        }
    }

    /// Where its settings are in a spec: `source`, `transforms[1]`, `sink`.
    pub fn field(self) -> String {
        match self {
            Side::Transform(i) => format!("transforms[{i}]"),
            other => other.role().to_string(),
        }
    }

    /// Its kind, for logs and metrics labels.
    pub fn role(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Transform(_) => "transform",
            Side::Sink => "sink",
        }
    }

    /// The worlds that can serve as this side, for messages.
    pub fn wanted(self) -> &'static str {
        match self {
            Side::Source => "a batch-source or stream-source",
            Side::Transform(_) => "a transform",
            Side::Sink => "a sink",
        }
    }

    /// Whether a plugin of `world` can serve as this side.
    pub fn accepts(self, world: World) -> bool {
        match self {
            Side::Source => world.is_source(),
            Side::Transform(_) => world == World::Transform,
            Side::Sink => world == World::Sink,
        }
    }
}

/// Why a plugin does not fit a side.
#[derive(Debug)]
pub enum Misfit {
    /// A sink where a source is needed, or the other way round.
    World { side: Side, world: World },
    /// The side's config breaks the plugin's schema, each violation naming the field.
    Config { side: Side, violations: Vec<String> },
    /// The plugin's schema itself is unusable.
    Schema(anyhow::Error),
}

impl std::fmt::Display for Misfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Misfit::World { side, world } => {
                write!(f, "its {} cannot be a {world}", side.name())
            }
            Misfit::Config { side, violations } => write!(
                f,
                "it rejects its {} config:\n  - {}",
                side.name(),
                violations.join("\n  - ")
            ),
            Misfit::Schema(e) => write!(f, "{e:#}"),
        }
    }
}

/// Whether a plugin of `world` whose config schema is `schema` can serve as `side` with
/// `config`.
pub fn fit(
    side: Side,
    world: World,
    schema: &str,
    config: &serde_json::Value,
) -> Result<(), Misfit> {
    if !side.accepts(world) {
        return Err(Misfit::World { side, world });
    }
    let violations = schema::violations(schema, config).map_err(Misfit::Schema)?;
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Misfit::Config { side, violations })
    }
}

/// A plugin file as the runtime loads it, and what it says about itself.
pub struct Inspected {
    pub plugin: Arc<Plugin>,
    pub spec: ConnectorSpec,
    /// The spec's config schema, parsed and known to compile.
    pub schema: serde_json::Value,
}

/// Loads `file` (a component, a known world, the contract's exports, imports the host
/// provides) and asks it for its spec under `limits` with no grants: it can touch
/// nothing, and one that loops in `spec` is stopped like anywhere else.
pub async fn inspect(runtime: &Runtime, file: &Path, limits: Limits) -> Result<Inspected> {
    let plugin = runtime.load(file)?;
    let sandbox = Sandbox {
        limits,
        ..Sandbox::default()
    };
    let labels = Labels {
        pipeline: String::new(),
        plugin: plugin.name.clone(),
        role: "inspect",
    };
    let mut instance = runtime.instantiate(&plugin, &sandbox, labels).await?;
    let spec = instance.spec().await?;
    schema::violations(&spec.config_schema, &serde_json::json!({}))?;
    let schema = serde_json::from_str(&spec.config_schema)
        .context("the plugin's config schema is not JSON")?;
    Ok(Inspected {
        plugin,
        spec,
        schema,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &str = r#"{"type": "object", "required": ["dir"]}"#;

    #[test]
    fn a_side_takes_its_worlds_and_a_config_its_schema_passes() {
        let ok = json!({"dir": "/in"});
        assert!(fit(Side::Source, World::BatchSource, SCHEMA, &ok).is_ok());
        assert!(fit(Side::Source, World::StreamSource, SCHEMA, &ok).is_ok());
        assert!(fit(Side::Sink, World::Sink, SCHEMA, &ok).is_ok());
        assert!(fit(Side::Transform(1), World::Transform, SCHEMA, &ok).is_ok());
        for (side, world) in [
            (Side::Source, World::Sink),
            (Side::Sink, World::BatchSource),
            (Side::Sink, World::StreamSource),
            (Side::Sink, World::Transform),
            (Side::Transform(0), World::Sink),
            (Side::Source, World::Transform),
        ] {
            let misfit = fit(side, world, SCHEMA, &ok).unwrap_err();
            assert!(matches!(misfit, Misfit::World { .. }), "{misfit}");
        }
        let misfit = fit(Side::Sink, World::Sink, SCHEMA, &json!({})).unwrap_err();
        assert!(
            misfit.to_string().contains("rejects its sink config")
                && misfit.to_string().contains("dir"),
            "{misfit}"
        );
        let misfit = fit(Side::Sink, World::Sink, "{not json", &ok).unwrap_err();
        assert!(matches!(misfit, Misfit::Schema(_)), "{misfit}");
    }
}
