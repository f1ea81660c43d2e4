//! Host-side file access on behalf of a pipeline or tenant.
//!
//! WASI lets a plugin create symbolic links inside a directory it may write. The plugin
//! cannot follow them out, but host code that later opened a path there by name would
//! (a dead-letter file, a directory object store, a secret file, another pipeline's grant).
//! So a host path is a [`HostDir`]: an *anchor*, a directory no plugin can write into the
//! parent of, opened by name; and a path below it walked one component at a time, refusing
//! every symbolic link. Whatever a plugin renames or links between configuration and use,
//! the host stays beneath the anchor and never follows a link planted below it.

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::ambient_authority;
pub use cap_std::fs::{Dir, File, OpenOptions};
use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};

/// A directory the host opens for a pipeline or tenant: `anchor`, then `below` it with no
/// link followed.
#[derive(Clone, PartialEq, Eq)]
pub struct HostDir {
    anchor: PathBuf,
    below: PathBuf,
}

impl fmt::Debug for HostDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path().display())
    }
}

impl HostDir {
    /// `path` (absolute, normalised) anchored at the outermost of `roots` that holds it:
    /// inside a directory a plugin may write, every component is the plugin's to replace.
    /// A path in none of them is the operator's alone, and is its own anchor.
    pub fn place(path: &Path, roots: &[PathBuf]) -> HostDir {
        HostDir::within(path, roots).unwrap_or_else(|| HostDir {
            anchor: path.to_path_buf(),
            below: PathBuf::new(),
        })
    }

    /// `path` anchored at the outermost of `roots` that holds it, or none if none does.
    pub fn within(path: &Path, roots: &[PathBuf]) -> Option<HostDir> {
        roots
            .iter()
            .filter_map(|root| {
                let below = path.strip_prefix(root).ok()?;
                Some(HostDir {
                    anchor: root.clone(),
                    below: below.to_path_buf(),
                })
            })
            .min_by_key(|d| d.anchor.components().count())
    }

    /// Where it is, for messages and comparisons.
    pub fn path(&self) -> PathBuf {
        if self.below.as_os_str().is_empty() {
            self.anchor.clone()
        } else {
            self.anchor.join(&self.below)
        }
    }

    pub fn anchor(&self) -> &Path {
        &self.anchor
    }

    /// Opens the directory; it must exist.
    pub fn open(&self) -> io::Result<Dir> {
        self.walk(false)
    }

    /// Opens the directory, creating what is missing of it beneath the anchor (and the
    /// anchor itself, which only the operator controls).
    pub fn create(&self) -> io::Result<Dir> {
        self.walk(true)
    }

    fn walk(&self, create: bool) -> io::Result<Dir> {
        if create {
            std::fs::create_dir_all(&self.anchor)?;
        }
        let mut dir = Dir::open_ambient_dir(&self.anchor, ambient_authority())?;
        for part in self.below.components() {
            let Component::Normal(name) = part else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "`{}` is not a plain path below its anchor",
                        self.path().display()
                    ),
                ));
            };
            if create {
                match dir.create_dir(name) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                    _ => {}
                }
            }
            dir = open_dir_nofollow(&dir, Path::new(name))?;
        }
        Ok(dir)
    }

    /// The first line of the file `name` in this directory (a secret), not through a link.
    pub fn read_first_line(&self, name: &str) -> io::Result<String> {
        let mut file = open_file(&self.open()?, name, OpenOptions::new().read(true))?;
        let mut text = String::new();
        io::Read::read_to_string(&mut file, &mut text)?;
        Ok(text.lines().next().unwrap_or_default().to_string())
    }
}

/// A subdirectory of `dir` named by one component; a link there is refused.
pub fn open_dir_nofollow(dir: &Dir, name: &Path) -> io::Result<Dir> {
    match dir.open_dir_nofollow(name) {
        Err(e) if dir.symlink_metadata(name).is_ok_and(|m| m.is_symlink()) => Err(io::Error::new(
            e.kind(),
            format!(
                "`{}` is a symbolic link, which the host does not follow",
                name.display()
            ),
        )),
        other => other,
    }
}

/// The file `name` (one component) in `dir`, opened as `options` say; a link is refused.
pub fn open_file(dir: &Dir, name: &str, options: &mut OpenOptions) -> io::Result<File> {
    let single = matches!(
        Path::new(name).components().collect::<Vec<_>>().as_slice(),
        [Component::Normal(_)]
    );
    if !single {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}` is not a file name"),
        ));
    }
    options.follow(FollowSymlinks::No);
    dir.open_with(name, options).map_err(|e| {
        if dir.symlink_metadata(name).is_ok_and(|m| m.is_symlink()) {
            io::Error::new(
                e.kind(),
                format!("`{name}` is a symbolic link, which the host does not follow"),
            )
        } else {
            e
        }
    })
}

/// A path by which a library that only takes paths (WASI's preopens, SQLite) reaches
/// exactly the directory `dir` is open on, however the tree changes meanwhile. Valid while
/// `dir` stays open.
pub fn fd_path(dir: &Dir) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()))
}

/// `path` with `.` dropped and `..` taken lexically (against an absolute, resolved base
/// this is where the operator meant).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `a` is `b`, or one of them holds the other.
pub fn overlap(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn the_outermost_root_is_the_anchor() {
        let roots = vec![PathBuf::from("/srv/a/out"), PathBuf::from("/srv/a")];
        let d = HostDir::place(Path::new("/srv/a/out/dlq"), &roots);
        assert_eq!(d.anchor(), Path::new("/srv/a"));
        assert_eq!(d.path(), Path::new("/srv/a/out/dlq"));
        let alone = HostDir::place(Path::new("/data"), &roots);
        assert_eq!(alone.anchor(), Path::new("/data"));
        assert!(HostDir::within(Path::new("/srv/ab"), &roots).is_none());
    }

    #[test]
    fn links_below_the_anchor_are_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("shared");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "s3cret\n").unwrap();
        symlink(&outside, root.join("abs")).unwrap();
        symlink("../outside", root.join("rel")).unwrap();
        symlink("real", root.join("inside")).unwrap();
        let roots = vec![root.clone()];
        for link in ["abs", "rel", "inside"] {
            let d = HostDir::place(&root.join(link), &roots);
            let err = d.open().unwrap_err().to_string();
            assert!(err.contains("symbolic link"), "{link}: {err}");
            let err = d.create().unwrap_err().to_string();
            assert!(err.contains("symbolic link"), "{link}: {err}");
            assert!(
                HostDir::place(&root.join(link).join("deeper"), &roots)
                    .create()
                    .is_err()
            );
        }
        assert!(!outside.join("deeper").exists());
        // A file link is refused too, and nothing is written through it.
        symlink(outside.join("secret"), root.join("real/secret")).unwrap();
        let real = HostDir::place(&root.join("real"), &roots);
        let err = real.read_first_line("secret").unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        let appended = open_file(
            &real.open().unwrap(),
            "secret",
            OpenOptions::new().append(true).create(true),
        );
        assert!(appended.is_err());
        assert_eq!(
            std::fs::read_to_string(outside.join("secret")).unwrap(),
            "s3cret\n"
        );
        // Plain directories are created beneath the anchor.
        HostDir::place(&root.join("real/new/deeper"), &roots)
            .create()
            .unwrap();
        assert!(root.join("real/new/deeper").is_dir());
    }

    #[test]
    fn paths_normalise_lexically() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), Path::new("/a/c"));
        assert!(overlap(Path::new("/a/b"), Path::new("/a")));
        assert!(!overlap(Path::new("/a/bc"), Path::new("/a/b")));
    }
}
