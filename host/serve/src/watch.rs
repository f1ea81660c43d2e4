//! `weir serve --watch DIR`: `DIR/<tenant>/<plugin>.wasm` files are pushed as new versions
//! of that tenant's plugin when they change, as `weir plugin push` would.

use crate::api::App;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use weir_pipeline::Shutdown;

const EVERY: Duration = Duration::from_millis(500);

pub fn spawn(app: App, dir: PathBuf, stop: Shutdown) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("weir-watch".into())
        .spawn(move || {
            let mut seen: HashMap<PathBuf, (SystemTime, u64)> = HashMap::new();
            loop {
                scan(&app, &dir, &mut seen);
                if stop.wait(EVERY) {
                    break;
                }
            }
        })?;
    Ok(())
}

fn scan(app: &App, dir: &Path, seen: &mut HashMap<PathBuf, (SystemTime, u64)>) {
    let Ok(tenants) = std::fs::read_dir(dir) else {
        return;
    };
    for tenant in tenants.flatten().filter(|e| e.path().is_dir()) {
        let Ok(files) = std::fs::read_dir(tenant.path()) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            if path.extension().is_none_or(|e| e != "wasm") {
                continue;
            }
            let Ok(meta) = file.metadata() else { continue };
            let stamp = (
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            );
            if seen.get(&path) == Some(&stamp) {
                continue;
            }
            // A file still being written changes again; wait until it holds still.
            std::thread::sleep(Duration::from_millis(100));
            match std::fs::metadata(&path) {
                Ok(m) if (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()) == stamp => {}
                _ => continue,
            }
            seen.insert(path.clone(), stamp);
            push(app, &tenant.file_name().to_string_lossy(), &path);
        }
    }
}

fn push(app: &App, tenant: &str, path: &Path) {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let wasm = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read watched plugin");
            return;
        }
    };
    match app.plugins().push(tenant, &name, &wasm) {
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
