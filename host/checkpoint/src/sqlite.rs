//! The embedded default: checkpoints in `weir.db` in the state directory.

use crate::{CheckpointStore, Committed, Event, HISTORY_KEPT, Moved, Owner, now_ms};
use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A connection to `weir.db` in `dir`, the state directory's one database (checkpoints,
/// and `weir serve`'s registry beside them).
pub fn open_database(dir: &Path, what: &str) -> Result<(PathBuf, Connection)> {
    // Resolved once, then no link at the file itself: the state directory is the host's,
    // and a link inside it is nobody's the host should follow.
    let path = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve the state directory {}", dir.display()))?
        .join("weir.db");
    let flags = OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(&path, flags)
        .with_context(|| format!("cannot open the {what} {}", path.display()))?;
    // WAL with synchronous=FULL: every commit is fsynced before it returns, and a crash
    // leaves either the old row or the new one.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok((path, conn))
}

/// Locks the state directory for this process's life (`weir.lock`): two processes
/// delivering the same pipelines would deliver everything twice.
pub fn lock_state_dir(dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create state directory {}", dir.display()))?;
    let lock_path = dir.join("weir.lock");
    let mut lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    lock.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => {
            // The holder wrote its process id into the lock file when it took it.
            use std::io::Read;
            let mut holder = String::new();
            let _ = (&lock).take(64).read_to_string(&mut holder);
            let holder = holder.trim();
            anyhow::anyhow!(
                "state directory {} is in use by another weir process{}: two processes would \
                 deliver the same pipelines twice (stop that one, or give this file another \
                 state_dir)",
                dir.display(),
                if holder.is_empty() {
                    String::new()
                } else {
                    format!(" ({holder})")
                }
            )
        }
        std::fs::TryLockError::Error(e) => {
            anyhow::Error::new(e).context(format!("cannot lock {}", lock_path.display()))
        }
    })?;
    // Says who holds it, for the next one that tries.
    lock.set_len(0)
        .and_then(|()| {
            std::io::Write::write_all(
                &mut lock,
                format!("pid {}\n", std::process::id()).as_bytes(),
            )
        })
        .with_context(|| format!("cannot write {}", lock_path.display()))?;
    Ok(lock)
}

/// Checkpoints in `weir.db` (SQLite, WAL, `synchronous=FULL`) in the state directory.
pub struct SqliteCheckpoints {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// Held for the store's life: two processes delivering the same pipelines would
    /// deliver everything twice.
    _lock: std::fs::File,
}

impl SqliteCheckpoints {
    /// Opens (creating if needed) `weir.db` in `dir`.
    pub fn open(dir: &Path) -> Result<SqliteCheckpoints> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create state directory {}", dir.display()))?;
        let lock = lock_state_dir(dir)?;
        let (path, conn) = open_database(dir, "checkpoint store")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS checkpoints (
                pipeline     TEXT PRIMARY KEY,
                checkpoint   TEXT NOT NULL,
                committed_at INTEGER NOT NULL,
                commits      INTEGER NOT NULL
            );
            -- An operator's move (weir checkpoint set|reset) until the next commit.
            CREATE TABLE IF NOT EXISTS moves (
                pipeline   TEXT PRIMARY KEY,
                checkpoint TEXT,
                moved_at   INTEGER NOT NULL
            );
            -- What operators did to each pipeline (CheckpointStore::record).
            CREATE TABLE IF NOT EXISTS history (
                id       INTEGER PRIMARY KEY AUTOINCREMENT,
                pipeline TEXT NOT NULL,
                at       INTEGER NOT NULL,
                action   TEXT NOT NULL,
                detail   TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS history_by_pipeline ON history (pipeline, id)",
        )
        .with_context(|| format!("cannot set up checkpoint store {}", path.display()))?;
        Ok(SqliteCheckpoints {
            path,
            conn: Mutex::new(conn),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl CheckpointStore for SqliteCheckpoints {
    fn load(&self, pipeline: &str) -> Result<Option<Committed>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.query_row(
            "SELECT checkpoint, committed_at, commits FROM checkpoints WHERE pipeline = ?1",
            params![pipeline],
            |row| {
                Ok(Committed {
                    checkpoint: row.get(0)?,
                    committed_at_ms: row.get(1)?,
                    commits: row.get(2)?,
                })
            },
        )
        .optional()
        .with_context(|| format!("cannot read the checkpoint of pipeline `{pipeline}`"))
    }

    /// One process owns its own store: there is no other owner to fence out.
    fn commit(&self, pipeline: &str, checkpoint: &str, _owner: &Owner) -> Result<()> {
        let now = now_ms();
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO checkpoints (pipeline, checkpoint, committed_at, commits)
             VALUES (?1, ?2, ?3, 1)
             ON CONFLICT(pipeline) DO UPDATE SET
                checkpoint = excluded.checkpoint,
                committed_at = excluded.committed_at,
                commits = commits + 1",
            params![pipeline, checkpoint, now],
        )
        .with_context(|| format!("cannot commit the checkpoint of pipeline `{pipeline}`"))?;
        tx.execute("DELETE FROM moves WHERE pipeline = ?1", params![pipeline])?;
        tx.commit()
            .with_context(|| format!("cannot commit the checkpoint of pipeline `{pipeline}`"))
    }

    fn move_to(&self, pipeline: &str, checkpoint: Option<&str>) -> Result<()> {
        let now = now_ms();
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction()?;
        let from: Option<String> = tx
            .query_row(
                "SELECT checkpoint FROM checkpoints WHERE pipeline = ?1",
                params![pipeline],
                |r| r.get(0),
            )
            .optional()?;
        match checkpoint {
            Some(checkpoint) => tx.execute(
                "INSERT INTO checkpoints (pipeline, checkpoint, committed_at, commits)
                 VALUES (?1, ?2, ?3, 0)
                 ON CONFLICT(pipeline) DO UPDATE SET
                    checkpoint = excluded.checkpoint, committed_at = excluded.committed_at",
                params![pipeline, checkpoint, now],
            )?,
            None => tx.execute(
                "DELETE FROM checkpoints WHERE pipeline = ?1",
                params![pipeline],
            )?,
        };
        tx.execute(
            "INSERT OR REPLACE INTO moves (pipeline, checkpoint, moved_at) VALUES (?1, ?2, ?3)",
            params![pipeline, checkpoint, now],
        )?;
        let (action, detail) = move_event(from.as_deref(), checkpoint);
        append(&tx, pipeline, now, action, &detail)?;
        tx.commit()
            .with_context(|| format!("cannot move the checkpoint of pipeline `{pipeline}`"))
    }

    fn record(&self, pipeline: &str, action: &str, detail: &str) -> Result<()> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        append(&conn, pipeline, now_ms(), action, detail).with_context(|| {
            format!("cannot record `{action}` in the history of pipeline `{pipeline}`")
        })
    }

    fn history(&self, pipeline: &str) -> Result<Vec<Event>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt =
            conn.prepare("SELECT at, action, detail FROM history WHERE pipeline = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![pipeline], |row| {
            Ok(Event {
                at_ms: row.get(0)?,
                action: row.get(1)?,
                detail: row.get(2)?,
            })
        })?;
        rows.collect::<Result<_, _>>()
            .with_context(|| format!("cannot read the history of pipeline `{pipeline}`"))
    }

    fn moved(&self, pipeline: &str) -> Result<Option<Moved>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.query_row(
            "SELECT checkpoint, moved_at FROM moves WHERE pipeline = ?1",
            params![pipeline],
            |row| {
                Ok(Moved {
                    checkpoint: row.get(0)?,
                    moved_at_ms: row.get(1)?,
                })
            },
        )
        .optional()
        .with_context(|| format!("cannot read the moves of pipeline `{pipeline}`"))
    }

    fn reset(&self, pipeline: &str) -> Result<bool> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM checkpoints WHERE pipeline = ?1",
            params![pipeline],
        )?;
        tx.execute("DELETE FROM moves WHERE pipeline = ?1", params![pipeline])?;
        tx.execute("DELETE FROM history WHERE pipeline = ?1", params![pipeline])?;
        tx.commit()
            .with_context(|| format!("cannot reset pipeline `{pipeline}`"))?;
        Ok(n > 0)
    }

    fn list(&self) -> Result<Vec<(String, Committed)>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn.prepare(
            "SELECT pipeline, checkpoint, committed_at, commits FROM checkpoints ORDER BY pipeline",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get(0)?,
                Committed {
                    checkpoint: row.get(1)?,
                    committed_at_ms: row.get(2)?,
                    commits: row.get(3)?,
                },
            ))
        })?;
        rows.collect::<Result<_, _>>()
            .context("cannot list checkpoints")
    }
}

/// A move's history entry: the action and, as JSON, where from and where to.
fn move_event(from: Option<&str>, to: Option<&str>) -> (&'static str, String) {
    let action = if to.is_some() {
        "checkpoint set"
    } else {
        "checkpoint reset"
    };
    (
        action,
        serde_json::json!({ "from": from, "to": to }).to_string(),
    )
}

/// Adds a history entry and drops the pipeline's oldest past [`HISTORY_KEPT`].
fn append(conn: &Connection, pipeline: &str, at: i64, action: &str, detail: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO history (pipeline, at, action, detail) VALUES (?1, ?2, ?3, ?4)",
        params![pipeline, at, action, detail],
    )?;
    conn.execute(
        "DELETE FROM history WHERE pipeline = ?1 AND id <= (
             SELECT id FROM history WHERE pipeline = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![pipeline, HISTORY_KEPT],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_holds_until_the_next_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteCheckpoints::open(dir.path()).unwrap();
        store.commit("p", "5", &Owner::default()).unwrap();
        store.move_to("p", None).unwrap();
        assert_eq!(store.load("p").unwrap(), None);
        assert_eq!(store.moved("p").unwrap().unwrap().checkpoint, None);
        store.move_to("p", Some("2")).unwrap();
        assert_eq!(store.load("p").unwrap().unwrap().checkpoint, "2");
        assert_eq!(
            store.moved("p").unwrap().unwrap().checkpoint.as_deref(),
            Some("2")
        );
        store.commit("p", "3", &Owner::default()).unwrap();
        assert_eq!(store.moved("p").unwrap(), None, "a commit ends the move");
        assert_eq!(store.moved("q").unwrap(), None);
    }

    #[test]
    fn commit_replaces_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteCheckpoints::open(dir.path()).unwrap();
        assert_eq!(store.load("p").unwrap(), None);
        store.commit("p", r#"{"a":1}"#, &Owner::default()).unwrap();
        store.commit("p", r#"{"a":2}"#, &Owner::default()).unwrap();
        store.commit("q", "7", &Owner::default()).unwrap();
        drop(store);

        let store = SqliteCheckpoints::open(dir.path()).unwrap();
        let p = store.load("p").unwrap().unwrap();
        assert_eq!(p.checkpoint, r#"{"a":2}"#);
        assert_eq!(p.commits, 2);
        assert_eq!(store.load("q").unwrap().unwrap().checkpoint, "7");
        let names: Vec<String> = store.list().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["p", "q"]);
    }

    /// README: WAL with `synchronous=FULL`, so a commit is fsynced before it returns.
    #[test]
    fn the_database_is_wal_with_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteCheckpoints::open(dir.path()).unwrap();
        let conn = store.conn.lock().unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "FULL");
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SqliteCheckpoints::open(dir.path()).unwrap();
        let second = SqliteCheckpoints::open(dir.path()).err().unwrap();
        assert!(
            second.to_string().contains(&format!(
                "in use by another weir process (pid {})",
                std::process::id()
            )),
            "{second}"
        );
        drop(_first);
        SqliteCheckpoints::open(dir.path()).unwrap();
    }

    #[test]
    fn reset_forgets_one_pipeline() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteCheckpoints::open(dir.path()).unwrap();
        store.commit("p", "1", &Owner::default()).unwrap();
        store.commit("q", "2", &Owner::default()).unwrap();
        assert!(store.reset("p").unwrap());
        assert!(!store.reset("p").unwrap());
        assert_eq!(store.load("p").unwrap(), None);
        assert!(store.load("q").unwrap().is_some());
    }

    #[test]
    fn moves_and_actions_are_kept_in_the_history_until_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteCheckpoints::open(dir.path()).unwrap();
        store.record("p", "created", "{}").unwrap();
        store.commit("p", "\"a\"", &Owner::default()).unwrap();
        store.move_to("p", Some("\"b\"")).unwrap();
        store.move_to("p", None).unwrap();
        store.record("q", "created", "{}").unwrap();
        let history = store.history("p").unwrap();
        let seen: Vec<_> = history
            .iter()
            .map(|e| (e.action.as_str(), e.detail.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("created", "{}"),
                ("checkpoint set", r#"{"from":"\"a\"","to":"\"b\""}"#),
                ("checkpoint reset", r#"{"from":"\"b\"","to":null}"#),
            ]
        );
        assert!(history.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        store.reset("p").unwrap();
        assert_eq!(store.history("p").unwrap(), []);
        assert_eq!(
            store.history("q").unwrap().len(),
            1,
            "another pipeline's stays"
        );
        for i in 0..HISTORY_KEPT + 5 {
            store.record("q", "paused", &i.to_string()).unwrap();
        }
        let kept = store.history("q").unwrap();
        assert_eq!(kept.len() as i64, HISTORY_KEPT);
        assert_eq!(kept[0].detail, "5", "the oldest went first");
    }
}
