//! Host paths in a tenant's pipeline definition are checked *before* the definition is
//! resolved, because resolving creates writable directories and reads secret files: a
//! tenant must not get the host to do either outside its own directories.

use crate::tenant::Grants;
use anyhow::{Result, bail};
use serde_json::Value;
use std::path::{Component, Path};

pub fn precheck(definition: &Value, grants: &Grants) -> Result<()> {
    let mut problems = Vec::new();
    for side in ["source", "sink"] {
        let g = &definition[side]["grants"];
        if let Some(dirs) = g["dirs"].as_array() {
            for (i, d) in dirs.iter().enumerate() {
                let write = d["write"].as_bool().unwrap_or(false);
                check_path(
                    &format!("{side}.grants.dirs[{i}].host"),
                    &d["host"],
                    write,
                    grants,
                    &mut problems,
                );
            }
        }
        check_path(
            &format!("{side}.grants.objects.dir"),
            &g["objects"]["dir"],
            true,
            grants,
            &mut problems,
        );
        for (at, secret) in [
            ("sql.password", &g["sql"]["password"]),
            ("objects.access_key_id", &g["objects"]["access_key_id"]),
            (
                "objects.secret_access_key",
                &g["objects"]["secret_access_key"],
            ),
        ] {
            let at = format!("{side}.grants.{at}");
            if !secret["env"].is_null() {
                // The server's environment holds the operator's secrets, the admin token
                // among them.
                problems.push(format!(
                    "{at}: `env` secrets are not available in weir serve; use `file` in a tenant directory"
                ));
            }
            check_path(
                &format!("{at}.file"),
                &secret["file"],
                false,
                grants,
                &mut problems,
            );
        }
    }
    check_path(
        "dead_letter.dir",
        &definition["dead_letter"]["dir"],
        true,
        grants,
        &mut problems,
    );
    if !problems.is_empty() {
        bail!(
            "the pipeline reaches beyond its tenant's grants:\n  - {}",
            problems.join("\n  - ")
        );
    }
    Ok(())
}

fn check_path(at: &str, value: &Value, write: bool, grants: &Grants, problems: &mut Vec<String>) {
    if value.is_null() {
        return;
    }
    let Some(text) = value.as_str() else {
        problems.push(format!("{at}: not a path"));
        return;
    };
    let path = Path::new(text);
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        problems.push(format!(
            "{at}: `{text}` must be an absolute path without `..`"
        ));
        return;
    }
    // Lexically inside, and where it resolves to on disk now inside too: a symlink in a
    // tenant's directory must not lead the host to create or read anything elsewhere.
    let resolved = resolve_existing(path);
    let inside = grants.dirs.iter().any(|d| {
        let root = d.path.canonicalize().unwrap_or_else(|_| d.path.clone());
        (d.write || !write)
            && (path.starts_with(&d.path) || path.starts_with(&root))
            && resolved.starts_with(&root)
    });
    if !inside {
        let how = if write { "writable " } else { "" };
        problems.push(format!(
            "{at}: `{text}` is not within the tenant's {how}directories"
        ));
    }
}

/// `path` with its longest existing prefix resolved (symlinks, `.`), the rest appended:
/// where creating the missing part would land.
fn resolve_existing(path: &Path) -> std::path::PathBuf {
    let mut missing = Vec::new();
    let mut at = path;
    loop {
        if let Ok(real) = at.canonicalize() {
            return missing.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_owned());
                at = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::TenantDir;
    use serde_json::json;

    #[test]
    fn paths_outside_the_tenant_are_refused_before_anything_is_created() {
        let grants = Grants {
            dirs: vec![TenantDir {
                path: "/srv/tenant-a".into(),
                write: true,
            }],
            ..Grants::default()
        };
        let ok =
            json!({"sink": {"grants": {"dirs": [{"host": "/srv/tenant-a/out", "write": true}]}}});
        precheck(&ok, &grants).unwrap();
        for (bad, expected) in [
            (
                json!({"sink": {"grants": {"dirs": [{"host": "/srv/tenant-b", "write": true}]}}}),
                "sink.grants.dirs[0].host",
            ),
            (
                json!({"sink": {"grants": {"dirs": [{"host": "/srv/tenant-a/../tenant-b"}]}}}),
                "without `..`",
            ),
            (
                json!({"source": {"grants": {"dirs": [{"host": "relative"}]}}}),
                "absolute",
            ),
            (
                json!({"source": {"grants": {"sql": {"url": "postgres://x", "password": {"env": "WEIR_ADMIN_TOKEN"}}}}}),
                "`env` secrets",
            ),
            (
                json!({"source": {"grants": {"sql": {"url": "postgres://x", "password": {"file": "/etc/shadow"}}}}}),
                "sql.password.file",
            ),
            (
                json!({"dead_letter": {"dir": "/tmp/dl"}}),
                "dead_letter.dir",
            ),
        ] {
            let err = precheck(&bad, &grants).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
    }

    #[test]
    fn a_symlink_in_the_tenants_directory_does_not_lead_outside() {
        let root = tempfile::tempdir().unwrap();
        let (mine, outside) = (root.path().join("mine"), root.path().join("outside"));
        std::fs::create_dir_all(mine.join("real")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, mine.join("link")).unwrap();
        let grants = Grants {
            dirs: vec![TenantDir {
                path: mine.clone(),
                write: true,
            }],
            ..Grants::default()
        };
        let asking = |host: &std::path::Path| json!({"sink": {"grants": {"dirs": [{"host": host, "write": true}]}}});
        precheck(&asking(&mine.join("real/new/deeper")), &grants).unwrap();
        let err = precheck(&asking(&mine.join("link/new")), &grants)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not within the tenant's"), "{err}");
        assert!(!outside.join("new").exists());
    }
}
