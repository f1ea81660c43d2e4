//! `weir serve --watch DIR`: `DIR/<tenant>/<plugin>.wasm` files are pushed as new versions
//! of that tenant's plugin when they change, as `weir plugin push` would.

use crate::ops::Ops;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use weir_pipeline::Shutdown;
use weir_runtime::HostDir;
use weir_runtime::confined::{Dir, OpenOptions, open_dir_nofollow, open_file};

const EVERY: Duration = Duration::from_millis(500);

pub fn spawn(ops: Arc<Ops>, dir: PathBuf, stop: Shutdown) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("weir-watch".into())
        .spawn(move || {
            let mut seen: HashMap<PathBuf, (SystemTime, u64)> = HashMap::new();
            loop {
                scan(&ops, &dir, &mut seen);
                if stop.wait(EVERY) {
                    break;
                }
            }
        })?;
    Ok(())
}

/// Every `<tenant>/<plugin>.wasm` below `dir`, read beneath its handle: links are
/// skipped, so nobody who can write there makes the server read another file.
fn scan(ops: &Ops, dir: &Path, seen: &mut HashMap<PathBuf, (SystemTime, u64)>) {
    let Ok(root) = HostDir::place(dir, &[]).open() else {
        return;
    };
    let Ok(tenants) = root.entries() else { return };
    for tenant in tenants.flatten() {
        let name = tenant.file_name();
        let Ok(folder) = open_dir_nofollow(&root, Path::new(&name)) else {
            continue;
        };
        let tenant = name.to_string_lossy().into_owned();
        let Ok(files) = folder.entries() else {
            continue;
        };
        for file in files.flatten() {
            let file_name = file.file_name().to_string_lossy().into_owned();
            let path = dir.join(&tenant).join(&file_name);
            if path.extension().is_none_or(|e| e != "wasm") {
                continue;
            }
            let Ok(meta) = file.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let stamp = (
                meta.modified()
                    .map(|t| t.into_std())
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            );
            if seen.get(&path) == Some(&stamp) {
                continue;
            }
            // A file still being written changes again; wait until it holds still.
            std::thread::sleep(Duration::from_millis(100));
            let wasm = match read(&folder, &file_name, stamp) {
                Ok(Some(wasm)) => wasm,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read watched plugin");
                    continue;
                }
            };
            seen.insert(path.clone(), stamp);
            push(ops, &tenant, &path, &wasm);
        }
    }
}

/// The file's bytes if it still has `stamp`.
fn read(folder: &Dir, name: &str, stamp: (SystemTime, u64)) -> std::io::Result<Option<Vec<u8>>> {
    let mut file = open_file(folder, name, OpenOptions::new().read(true))?;
    let meta = file.metadata()?;
    let now = (
        meta.modified()
            .map(|t| t.into_std())
            .unwrap_or(SystemTime::UNIX_EPOCH),
        meta.len(),
    );
    if now != stamp {
        return Ok(None);
    }
    let mut wasm = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut wasm)?;
    Ok(Some(wasm))
}

fn push(ops: &Ops, tenant: &str, path: &Path, wasm: &[u8]) {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match ops.push(tenant, &name, wasm) {
        Ok(p) if p.created => tracing::info!(
            tenant, plugin = %name, version = p.plugin.version, upgraded = ?p.upgraded,
            "watched plugin pushed"
        ),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(tenant, path = %path.display(), error = ?e, "watched plugin refused")
        }
    }
}
