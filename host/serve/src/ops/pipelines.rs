//! Pipelines: create one from a spec (held to the tenant's quotas and grants, its plugins
//! pinned and fitted), show, pause and resume, upgrade its plugin versions, delete it.

use super::plugins::{fits, pin};
use super::{Error, Ops, Result, check_name};
use crate::registry::{Desired, Pins, PipelineRow, Tenant, key};
use crate::supervisor::{self, Snapshot};
use serde::Serialize;
use serde_json::json;
use weir_pipeline::{PipelineSpec, Side, Stream};

/// A pipeline as the API shows it: what was asked, what runs, and how it goes.
#[derive(Debug, Serialize)]
pub struct PipelineStatus {
    pub name: String,
    /// What the worker reports; none while the pipeline has no worker.
    #[serde(flatten)]
    pub live: Option<Snapshot>,
    /// The node that runs it, in a cluster (any node answers for every pipeline; only
    /// that one has its live figures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub desired: Desired,
    pub pinned: Pins,
    pub definition: PipelineSpec,
}

/// The versions to move to; none is the latest.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upgrade {
    pub source_version: Option<i64>,
    /// One per transform, in order (null: the latest); left out, all move to the latest.
    #[serde(default)]
    pub transform_versions: Vec<Option<i64>>,
    pub sink_version: Option<i64>,
}

impl Upgrade {
    fn version(&self, side: Side) -> Option<i64> {
        match side {
            Side::Source => self.source_version,
            Side::Transform(i) => self.transform_versions.get(i).copied().flatten(),
            Side::Sink => self.sink_version,
        }
    }

    fn field(side: Side) -> String {
        match side {
            Side::Transform(i) => format!("transform_versions[{i}]"),
            other => format!("{}_version", other.role()),
        }
    }
}

impl Ops {
    /// Creates and starts a pipeline. Limits left out are the tenant's quotas; nothing is
    /// stored unless its plugins fit, its configs pass their schemas and it resolves
    /// inside the tenant's grants.
    pub fn create_pipeline(&self, tenant: &str, spec: PipelineSpec) -> Result<PipelineStatus> {
        let name = spec.name.clone();
        check_name("pipeline", &name)?;
        let t = self.tenant(tenant)?;
        if self.registry.pipeline(tenant, &name)?.is_some() {
            return Err(Error::Conflict(format!("pipeline `{name}` exists")));
        }
        if self.registry.count_pipelines(tenant)? >= t.quotas.max_pipelines {
            return Err(Error::Refused(format!(
                "the tenant's quota of {} pipelines is used up",
                t.quotas.max_pipelines
            )));
        }
        let row = self.checked_row(&t, spec, Desired::Running)?;
        // A pipeline of this name may have existed before: its position is not this one's.
        // Forgotten before the row exists, since in a cluster another node may start the
        // pipeline as soon as it does.
        self.supervisor.checkpoints().reset(&row.key())?;
        self.registry.insert_pipeline(&row)?;
        if let Err(e) = self.supervisor.spawn(&row) {
            // Out of threads or memory maps: say so, and keep nothing half-made.
            self.registry.delete_pipeline(tenant, &name)?;
            return Err(Error::AtLimit(format!(
                "{e:#}: the host is at its limit; nothing was created"
            )));
        }
        self.record(
            tenant,
            &name,
            "created",
            json!({ "versions": row.pins.versions() }),
        );
        self.pipeline(tenant, &name)
    }

    /// A definition held to the tenant's quotas and grants, its plugins pinned to their
    /// versions and fitted to their sides: a row ready to store, or why not.
    fn checked_row(
        &self,
        t: &Tenant,
        mut spec: PipelineSpec,
        desired: Desired,
    ) -> Result<PipelineRow> {
        let name = spec.name.clone();
        spec.limits = spec
            .limits
            .within(&t.quotas.limits())
            .map_err(Error::refused)?;
        // A transform's own limits are held to the quotas too (what it leaves out is
        // the pipeline's, now filled).
        let quota = t.quotas.limits();
        for (i, step) in spec.transforms.iter_mut().enumerate() {
            step.limits = step
                .limits
                .over(&spec.limits)
                .within(&quota)
                .map_err(|e| Error::Refused(format!("transforms[{i}].{e:#}")))?;
        }
        let registry = self.registry.as_ref();
        let tenant = t.name.as_str();
        let mut pinned = Vec::new();
        for side in spec.sides() {
            let field = format!("{}.plugin", side.field());
            pinned.push((side, pin(registry, tenant, spec.plugin(side), &field)?));
        }
        let pin_of = |side: Side| {
            pinned
                .iter()
                .find(|(s, _)| *s == side)
                .map(|(_, (r, _, _))| r.clone())
                .expect("every side was pinned")
        };
        let pins = Pins {
            source: pin_of(Side::Source),
            transforms: (0..spec.transforms.len())
                .map(|i| pin_of(Side::Transform(i)))
                .collect(),
            sink: pin_of(Side::Sink),
        };
        let row = PipelineRow {
            tenant: tenant.to_string(),
            name: name.clone(),
            spec,
            pins,
            desired,
            last_error: None,
        };
        let mut problems = Vec::new();
        for (side, (r, world, plugin_spec)) in &pinned {
            if let Err(e) = fits(&row, *side, *world, plugin_spec) {
                problems.push(format!("{}.plugin `{}`: {e}", side.field(), r.name));
            }
        }
        if !problems.is_empty() {
            return Err(Error::Refused(format!(
                "pipeline `{name}`:\n  - {}",
                problems.join("\n  - ")
            )));
        }
        supervisor::build(registry, &t.grants, &row).map_err(Error::refused)?;
        Ok(row)
    }

    /// Replaces a pipeline's definition, keeping its checkpoint and whether it runs. The new
    /// one is checked as a new pipeline is; the run in progress stops after its batch in
    /// flight, and the new definition starts where it committed.
    pub fn update_pipeline(
        &self,
        tenant: &str,
        name: &str,
        spec: PipelineSpec,
    ) -> Result<PipelineStatus> {
        let _one = self.one_change();
        let old = self.existing(tenant, name)?;
        if spec.name != name {
            return Err(Error::Refused(format!(
                "the definition names pipeline `{}`, not `{name}`: a pipeline keeps its name (create a new one to rename)",
                spec.name
            )));
        }
        let t = self.tenant(tenant)?;
        let row = self.checked_row(&t, spec, old.desired)?;
        self.registry.replace_definition(&row)?;
        self.supervisor.swap(tenant, name);
        self.record(
            tenant,
            name,
            "updated",
            json!({ "versions": row.pins.versions() }),
        );
        self.pipeline(tenant, name)
    }

    pub fn pipeline(&self, tenant: &str, name: &str) -> Result<PipelineStatus> {
        let row = self.existing(tenant, name)?;
        Ok(self.status(row))
    }

    pub fn pipelines(&self, tenant: &str) -> Result<Vec<PipelineStatus>> {
        let rows = self.registry.pipelines(tenant)?;
        Ok(rows.into_iter().map(|row| self.status(row)).collect())
    }

    /// Pause or resume: stored first, so a restart of the server keeps what was asked.
    pub fn set_desired(
        &self,
        tenant: &str,
        name: &str,
        desired: Desired,
    ) -> Result<PipelineStatus> {
        self.existing(tenant, name)?;
        self.registry.set_desired(tenant, name, desired, None)?;
        let action = match desired {
            Desired::Running => {
                self.supervisor.resume(tenant, name);
                "resumed"
            }
            Desired::Paused | Desired::Failed => {
                self.supervisor.pause(tenant, name);
                "paused"
            }
        };
        self.record(tenant, name, action, json!({}));
        self.pipeline(tenant, name)
    }

    /// Moves a pipeline to the asked (or latest) versions of its plugins, at its next
    /// checkpoint boundary; whether anything changed.
    pub fn upgrade(
        &self,
        tenant: &str,
        name: &str,
        asked: &Upgrade,
    ) -> Result<(PipelineStatus, bool)> {
        let _one = self.one_change();
        let row = self.existing(tenant, name)?;
        if asked.transform_versions.len() > row.pins.transforms.len() {
            return Err(Error::Refused(format!(
                "transform_versions: pipeline `{name}` has {} transform(s)",
                row.pins.transforms.len()
            )));
        }
        let registry = self.registry.as_ref();
        let mut pins = row.pins.clone();
        for side in row.pins.sides() {
            let current = row.pins.get(side);
            let target = match asked.version(side) {
                Some(v) => format!("{}@{v}", current.name),
                None => current.name.clone(),
            };
            let (r, world, spec) = pin(registry, tenant, &target, &Upgrade::field(side))?;
            fits(&row, side, world, &spec).map_err(|e| {
                Error::Refused(format!(
                    "pipeline `{name}` stays on its current versions: `{}` version {}: {e}",
                    r.name, r.version
                ))
            })?;
            *pins.get_mut(side) = r;
        }
        let changed = pins != row.pins;
        if changed {
            self.registry.set_pins(tenant, name, &pins)?;
            self.supervisor.swap(tenant, name);
            self.record(tenant, name, "upgraded", row.pins.moved_to(&pins));
        }
        Ok((self.pipeline(tenant, name)?, changed))
    }

    /// Where the pipeline resumes: its committed checkpoint, and whether an operator moved
    /// it since its last commit.
    pub fn checkpoint(&self, tenant: &str, name: &str) -> Result<serde_json::Value> {
        self.existing(tenant, name)?;
        let store = self.supervisor.checkpoints();
        let committed = store.load(&key(tenant, name))?;
        let moved = store.moved(&key(tenant, name))?;
        Ok(serde_json::json!({
            "checkpoint": committed.as_ref().map(|c| &c.checkpoint),
            "committed_at_ms": committed.as_ref().map(|c| c.committed_at_ms),
            "commits": committed.as_ref().map_or(0, |c| c.commits),
            "moved_at_ms": moved.map(|m| m.moved_at_ms),
        }))
    }

    /// Moves a paused pipeline to `checkpoint` (none: the beginning). A checkpoint is first
    /// given to a fresh instance of the pipeline's source, inside the tenant's grants: one it
    /// cannot open at is refused. The move beats what a transactional sink stored, until
    /// the pipeline's next commit.
    pub fn move_checkpoint(
        &self,
        tenant: &str,
        name: &str,
        checkpoint: Option<&str>,
    ) -> Result<serde_json::Value> {
        let _one = self.one_change();
        let row = self.existing(tenant, name)?;
        let stopped = self
            .supervisor
            .snapshot(tenant, name)
            .is_none_or(|s| s.stats.state == supervisor::State::Paused);
        if row.desired != Desired::Paused || !stopped {
            return Err(Error::Conflict(format!(
                "pipeline `{name}` is running: pause it first, then move its checkpoint"
            )));
        }
        if let Some(checkpoint) = checkpoint {
            let t = self.tenant(tenant)?;
            let pipeline = supervisor::build(self.registry.as_ref(), &t.grants, &row)
                .map_err(Error::refused)?;
            weir_runtime::block_on(weir_pipeline::source_opens_at(
                &self.runtime,
                &pipeline,
                checkpoint,
            ))
            .map_err(Error::refused)?;
        }
        self.supervisor
            .checkpoints()
            .move_to(&key(tenant, name), checkpoint)?;
        tracing::warn!(pipeline = %key(tenant, name), checkpoint = ?checkpoint, "an operator moved the pipeline's checkpoint");
        self.checkpoint(tenant, name)
    }

    /// The streams the pipeline's source can read, asked inside the tenant's grants.
    pub fn discover(&self, tenant: &str, name: &str) -> Result<Vec<Stream>> {
        let row = self.existing(tenant, name)?;
        let t = self.tenant(tenant)?;
        let pipeline =
            supervisor::build(self.registry.as_ref(), &t.grants, &row).map_err(Error::refused)?;
        weir_runtime::block_on(weir_pipeline::discover(&self.runtime, &pipeline))
            .map_err(Error::refused)
    }

    /// Stops the pipeline (after the batch in flight, so no run commits after its
    /// checkpoint is gone), then forgets it and its checkpoint.
    pub fn delete_pipeline(&self, tenant: &str, name: &str) -> Result<()> {
        self.existing(tenant, name)?;
        self.supervisor.remove(tenant, name);
        self.registry.delete_pipeline(tenant, name)?;
        self.supervisor.checkpoints().reset(&key(tenant, name))?;
        crate::logs::logs().forget(&key(tenant, name));
        Ok(())
    }

    /// What operators did to the pipeline, oldest first: creation, updates, pauses and
    /// resumes, upgrades, checkpoint moves.
    pub fn history(&self, tenant: &str, name: &str) -> Result<serde_json::Value> {
        self.existing(tenant, name)?;
        let events = self.supervisor.checkpoints().history(&key(tenant, name))?;
        let events: Vec<_> = events
            .into_iter()
            .map(|e| {
                json!({
                    "at_ms": e.at_ms,
                    "action": e.action,
                    "detail": serde_json::from_str::<serde_json::Value>(&e.detail)
                        .unwrap_or(serde_json::Value::String(e.detail)),
                })
            })
            .collect();
        Ok(json!({ "history": events }))
    }

    /// A page of the pipeline's dead letters, newest first, from its dead-letter directory;
    /// for a Kafka destination, where they are instead.
    pub fn dead_letters(
        &self,
        tenant: &str,
        name: &str,
        skip: usize,
        limit: usize,
    ) -> Result<serde_json::Value> {
        let row = self.existing(tenant, name)?;
        let t = self.tenant(tenant)?;
        let pipeline =
            supervisor::build(self.registry.as_ref(), &t.grants, &row).map_err(Error::refused)?;
        Ok(match &pipeline.dead_letter {
            None => json!({ "dead_letters": [], "more": false, "store": null }),
            Some(weir_pipeline::DeadLetterTarget::Kafka { topic, .. }) => {
                json!({ "dead_letters": null, "more": false, "store": { "kafka_topic": topic } })
            }
            Some(weir_pipeline::DeadLetterTarget::Dir(dir)) => {
                let (page, more) =
                    weir_pipeline::latest_dead_letters(&pipeline.name, dir, skip, limit)?;
                json!({ "dead_letters": page, "more": more, "store": { "dir": dir.path() } })
            }
        })
    }

    /// Adds to the pipeline's history. What was asked is done by now: a history that
    /// cannot be written is logged, not reported as the action failing.
    pub(crate) fn record(&self, tenant: &str, name: &str, action: &str, detail: serde_json::Value) {
        let pipeline = key(tenant, name);
        if let Err(e) = self
            .supervisor
            .checkpoints()
            .record(&pipeline, action, &detail.to_string())
        {
            tracing::warn!(%pipeline, action, error = %format!("{e:#}"), "cannot record in the pipeline's history");
        }
    }

    fn existing(&self, tenant: &str, name: &str) -> Result<PipelineRow> {
        self.registry
            .pipeline(tenant, name)?
            .ok_or_else(|| Error::not_found(format!("pipeline `{name}`")))
    }

    fn status(&self, row: PipelineRow) -> PipelineStatus {
        let owner = self
            .supervisor
            .checkpoints()
            .owner(&row.key())
            .ok()
            .flatten();
        PipelineStatus {
            live: self.supervisor.snapshot(&row.tenant, &row.name),
            node: owner.map(|o| o.node).filter(|n| !n.is_empty()),
            name: row.name,
            desired: row.desired,
            pinned: row.pins,
            definition: row.spec,
        }
    }
}
