//! Objects as files in a host directory (`grants.objects = { dir }`), opened beneath one
//! directory handle. Plugins may write this directory (through the host, or through a WASI
//! grant elsewhere in the pipeline file), so it may hold links they planted: a link is
//! never listed, read or written through, and the first one met is logged once.

use crate::confined::{open_dir_nofollow, open_file};
use cap_fs_ext::MetadataExt;
use cap_std::fs::{Dir, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) struct DirStore {
    root: Dir,
    describe: String,
    warned: AtomicBool,
}

/// One listed object, as the contract describes it.
pub(crate) struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
}

impl DirStore {
    pub(crate) fn new(root: Dir, describe: String) -> DirStore {
        DirStore {
            root,
            describe,
            warned: AtomicBool::new(false),
        }
    }

    /// Every regular file below `folder` (a key prefix ending at a `/`, or the root).
    pub(crate) fn list(&self, folder: Option<&str>) -> io::Result<Vec<Listed>> {
        let mut found = Vec::new();
        let start = match folder {
            None => self.root.try_clone()?,
            Some(folder) => match self.dir_of(folder, false) {
                Ok(dir) => dir,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
                Err(e) => return Err(e),
            },
        };
        let prefix = folder.map(|f| format!("{f}/")).unwrap_or_default();
        self.walk(&start, &prefix, &mut found)?;
        Ok(found)
    }

    fn walk(&self, dir: &Dir, prefix: &str, found: &mut Vec<Listed>) -> io::Result<()> {
        for entry in dir.entries()? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // Not followed: a link's own type, and a link is skipped.
            let meta = entry.metadata()?;
            let kind = meta.file_type();
            if kind.is_symlink() {
                self.skipped_link(&format!("{prefix}{name}"));
            } else if kind.is_dir() {
                let sub = open_dir_nofollow(dir, Path::new(&name))?;
                self.walk(&sub, &format!("{prefix}{name}/"), found)?;
            } else if kind.is_file() && !name.starts_with(".weir-tmp-") {
                let modified_ns = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.into_std().duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                found.push(Listed {
                    key: format!("{prefix}{name}"),
                    size: meta.len(),
                    etag: format!("{:x}-{:x}-{:x}", meta.ino(), modified_ns, meta.len()),
                    last_modified_ms: (modified_ns / 1_000_000) as i64,
                });
            }
        }
        Ok(())
    }

    fn skipped_link(&self, key: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                store = %self.describe,
                key,
                "a symbolic link in the objects directory is skipped: the host never follows links there"
            );
        }
    }

    /// Up to `len` bytes of `key` from `offset`.
    pub(crate) fn read(&self, key: &str, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        let (dir, name) = self.parent_of(key, false)?;
        let mut file = open_file(&dir, name, OpenOptions::new().read(true))?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "not a regular file",
            ));
        }
        file.seek(SeekFrom::Start(offset))?;
        let mut data = Vec::new();
        file.take(u64::from(len)).read_to_end(&mut data)?;
        Ok(data)
    }

    /// Writes `key` whole: a temporary file beside it, synced, then renamed over it, so a
    /// reader sees the old object or the new one.
    pub(crate) fn write(&self, key: &str, data: &[u8]) -> io::Result<()> {
        let (dir, name) = self.parent_of(key, true)?;
        let temp = format!(".weir-tmp-{}-{name}", std::process::id());
        let mut file = open_file(
            &dir,
            &temp,
            OpenOptions::new().write(true).create(true).truncate(true),
        )?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        if dir.symlink_metadata(name).is_ok_and(|m| m.is_dir()) {
            let _ = dir.remove_file(&temp);
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("`{key}` is a directory"),
            ));
        }
        // rename replaces a link at `name` itself, never what it points to.
        dir.rename(&temp, &dir, name)
    }

    /// The directory holding `key`'s file, and the file's name.
    fn parent_of<'k>(&self, key: &'k str, create: bool) -> io::Result<(Dir, &'k str)> {
        match key.rsplit_once('/') {
            Some((folder, name)) => Ok((self.dir_of(folder, create)?, name)),
            None => Ok((self.root.try_clone()?, key)),
        }
    }

    fn dir_of(&self, folder: &str, create: bool) -> io::Result<Dir> {
        let mut dir = self.root.try_clone()?;
        for part in folder.split('/') {
            if create {
                match dir.create_dir(part) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                    _ => {}
                }
            }
            dir = open_dir_nofollow(&dir, Path::new(part))?;
        }
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_are_neither_listed_nor_read_nor_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, outside) = (tmp.path().join("landing"), tmp.path().join("etc"));
        std::fs::create_dir_all(root.join("in")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("shadow"), "root:x\n").unwrap();
        std::fs::write(root.join("in/a.jsonl"), "{}\n").unwrap();
        symlink("../../etc", root.join("in/up")).unwrap();
        symlink(&outside, root.join("abs")).unwrap();
        symlink(outside.join("shadow"), root.join("in/shadow")).unwrap();
        let store = DirStore::new(
            Dir::open_ambient_dir(&root, ambient_authority()).unwrap(),
            "landing".into(),
        );
        let keys: Vec<String> = store
            .list(None)
            .unwrap()
            .into_iter()
            .map(|l| l.key)
            .collect();
        assert_eq!(keys, ["in/a.jsonl"]);
        assert!(store.list(Some("abs")).is_err());
        for key in ["in/shadow", "in/up/shadow", "abs/shadow"] {
            assert!(store.read(key, 0, 100).is_err(), "{key}");
        }
        assert_eq!(store.read("in/a.jsonl", 0, 100).unwrap(), b"{}\n");
        assert!(store.write("abs/new", b"x").is_err());
        // Writing over a link replaces the link, not the file it points to.
        store.write("in/shadow", b"mine").unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.join("shadow")).unwrap(),
            "root:x\n"
        );
        assert!(!outside.join("new").exists());
        store.write("out/2026/b.jsonl", b"ok").unwrap();
        assert_eq!(store.read("out/2026/b.jsonl", 1, 10).unwrap(), b"k");
    }
}
