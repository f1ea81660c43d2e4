//! Property tests of a tenant's pipeline definitions, as the API receives them: whatever
//! paths, grants, limits and junk a definition holds, the checks never panic and the
//! server never creates or opens anything outside the tenant's directories, links included.
//! Cases and seed come from `PROPTEST_CASES` and `PROPTEST_RNG_SEED`.

use crate::tenant::{Grants, Quotas, TenantDir};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use weir_pipeline::{Access, DeadLetterTarget, Pipeline, PipelineSpec, Resolver};
use weir_runtime::io::ClientPolicy;
use weir_runtime::{ObjectLocation, ObjectsGrant};

/// A tenant owning `tenant/` (with a link in it pointing to `outside/`), beside `outside/`.
struct World {
    _tmp: tempfile::TempDir,
    tenant: PathBuf,
    outside: PathBuf,
    grants: Grants,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let (tenant, outside) = (tmp.path().join("tenant"), tmp.path().join("outside"));
    std::fs::create_dir_all(tenant.join("in")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(tenant.join("secret"), "pw\n").unwrap();
    std::os::unix::fs::symlink(&outside, tenant.join("link")).unwrap();
    std::os::unix::fs::symlink("../outside", tenant.join("up")).unwrap();
    let grants = Grants {
        dirs: vec![TenantDir {
            host: tenant.clone(),
            write: true,
            guest: None,
        }],
        objects: vec![crate::tenant::ObjectsTenantGrant::from(
            tenant.display().to_string(),
        )],
        ..Grants::default()
    };
    World {
        _tmp: tmp,
        tenant,
        outside,
        grants,
    }
}

/// A path a hostile definition might name: inside, through a link, climbing, outside,
/// relative, or junk.
fn path(w: &World) -> impl Strategy<Value = Value> {
    let t = w.tenant.display().to_string();
    let o = w.outside.display().to_string();
    prop_oneof![
        Just(json!(format!("{t}/out"))),
        Just(json!(format!("{t}/in"))),
        Just(json!(format!("{t}/link/new"))),
        Just(json!(format!("{t}/up/new"))),
        Just(json!(format!("{t}/link"))),
        Just(json!(format!("{t}/out/../../outside/x"))),
        Just(json!(format!("{o}/x"))),
        Just(json!("relative/dir")),
        Just(json!("/")),
        Just(json!(42)),
        Just(json!(null)),
    ]
}

fn junk() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z/.:@*?%\\[\\]{}=& é]{0,16}".prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
    ]
}

fn grants(w: &World) -> impl Strategy<Value = Value> {
    let dir = (path(w), "/[a-z]{0,3}", any::<bool>())
        .prop_map(|(host, guest, write)| json!({"host": host, "guest": guest, "write": write}));
    let secret = prop_oneof![
        4 => path(w).prop_map(|p| json!({ "file": p })),
        1 => Just(json!({ "env": "WEIR_ADMIN_TOKEN" })),
        1 => junk(),
    ];
    let objects = prop_oneof![
        6 => path(w).prop_map(|p| json!({ "dir": p })),
        3 => ("s3://[a-z]{0,4}/[a-z/.]{0,6}", prop::option::of("http://[0-9.:]{0,12}"), secret.clone())
            .prop_map(|(url, endpoint, key)| json!({ "url": url, "endpoint": endpoint, "secret_access_key": key })),
        1 => junk(),
    ];
    let kafka = (
        prop::collection::vec("[a-z.*]{0,5}", 0..3),
        prop::collection::btree_map("[a-z.]{1,24}", "[a-z/0-9]{0,8}", 0..3),
    )
        .prop_map(|(topics, properties)| json!({"brokers": "k:9092", "topics": topics, "properties": properties}));
    let sql = ("postgres://[a-z@:/%2F?=&]{0,24}", secret)
        .prop_map(|(url, password)| json!({ "url": url, "password": password }));
    (
        prop::collection::vec(prop_oneof![9 => dir, 1 => junk()], 0..3),
        prop::option::of(objects),
        prop::option::of(prop_oneof![9 => kafka, 1 => junk()]),
        prop::option::of(prop_oneof![9 => sql, 1 => junk()]),
        prop::option::of(prop::collection::vec(
            prop_oneof![9 => "[a-z.*]{1,8}(:[0-9]{1,4})?".prop_map(Value::from), 1 => junk()],
            0..3,
        )),
    )
        .prop_map(|(dirs, objects, kafka, sql, hosts)| {
            let mut g = json!({ "dirs": dirs });
            for (k, v) in [("objects", objects), ("kafka", kafka), ("sql", sql)] {
                if let Some(v) = v {
                    g[k] = v;
                }
            }
            if let Some(hosts) = hosts {
                g["http"] = json!({ "hosts": hosts });
            }
            g
        })
}

fn definition(w: &World) -> impl Strategy<Value = Value> {
    let limits = prop::collection::btree_map(
        prop::sample::select(vec![
            "memory",
            "call_timeout",
            "max_batch_bytes",
            "log_lines_per_second",
            "sql_connections",
            "bogus",
        ]),
        prop_oneof![
            3 => Just(json!("16 MiB")),
            3 => Just(json!("1s")),
            3 => (0u64..10).prop_map(Value::from),
            1 => junk(),
        ],
        0..2,
    );
    (
        grants(w),
        grants(w),
        prop::option::of(prop_oneof![9 => path(w).prop_map(|p| json!({ "dir": p })), 1 => junk()]),
        prop::option::of(limits),
    )
        .prop_map(|(source, sink, dead_letter, limits)| {
            let mut d = json!({
                "name": "p",
                "source": { "plugin": "s", "grants": source },
                "sink": { "plugin": "k", "grants": sink },
            });
            if let Some(dl) = dead_letter {
                d["dead_letter"] = dl;
            }
            if let Some(l) = limits {
                d["limits"] = json!(l);
            }
            d
        })
}

/// The tenant resolver without its checks: paths anchored at the tenant's directories and
/// nothing more.
struct AnchorsOnly {
    roots: Vec<PathBuf>,
    policy: ClientPolicy,
}

impl Resolver for AnchorsOnly {
    fn dir(&self, path: &Path, _: Access) -> anyhow::Result<weir_runtime::HostDir> {
        weir_runtime::HostDir::within(path, &self.roots)
            .ok_or_else(|| anyhow::anyhow!("outside the tenant"))
    }
    fn env(&self, _: &str) -> anyhow::Result<String> {
        anyhow::bail!("no env here")
    }
    fn plugin(&self, _: weir_pipeline::Side, reference: &str) -> anyhow::Result<PathBuf> {
        Ok(reference.into())
    }
    fn policy(&self) -> &ClientPolicy {
        &self.policy
    }
}

/// What starting `p` creates: its writable directories, where the runtime and the dead
/// letter store make them.
fn start(p: &Pipeline) {
    for e in p.sides().into_iter().map(|side| p.endpoint(side)) {
        for d in e.sandbox.dirs.iter().filter(|d| d.writable) {
            let _ = d.host.create();
        }
        if let Some(ObjectsGrant {
            location: ObjectLocation::Dir(dir),
            ..
        }) = &e.sandbox.objects
        {
            let _ = dir.create();
        }
    }
    if let Some(DeadLetterTarget::Dir(dir)) = &p.dead_letter {
        let _ = dir.create();
    }
}

/// Everything below `dir`, links not followed.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        found.push(path.clone());
        if entry.file_type().unwrap().is_dir() {
            found.extend(tree(&path));
        }
    }
    found
}

#[test]
fn definitions_never_reach_outside_the_tenant() {
    let w = world();
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(&definition(&w), |d| {
            // What the server does with a body, in its order, and then what a start does
            // (makes the writable directories); then the same with a resolver that only
            // anchors paths, as if the tenant's checks were gone: the handles must hold
            // by themselves.
            if let Ok(mut spec) = PipelineSpec::from_json(d)
                && let Ok(limits) = spec.limits.within(&Quotas::default().limits())
            {
                spec.limits = limits;
                if let Ok(p) = w.grants.resolve(&spec, &|_, p| Ok(PathBuf::from(p))) {
                    start(&p);
                }
                let anchors_only = AnchorsOnly {
                    roots: w.grants.roots(),
                    policy: ClientPolicy::default(),
                };
                if let Ok(p) = weir_pipeline::resolve(&spec, &anchors_only) {
                    start(&p);
                }
            }
            prop_assert!(
                tree(&w.outside).is_empty(),
                "created outside: {:?}",
                tree(&w.outside)
            );
            Ok(())
        })
        .unwrap();
}
