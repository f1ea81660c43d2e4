//! A throwaway PostgreSQL cluster per test, on a free loopback port, from the server
//! binaries Debian installs (`scripts/setup.sh` makes sure they are there). It requires a
//! password over TCP, so tests of credentials are real.

use crate::ports::free_port;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const PASSWORD: &str = "weir-test-secret";

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// initdb and postgres refuse to run as root: as root, run them as `postgres`.
fn as_owner(bin: &Path, program: &str) -> Command {
    let path = bin.join(program);
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn run(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = PathBuf::from(
            std::env::var("WEIR_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
        );
        let dir = tempfile::tempdir().unwrap();
        let _ = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        let _ = Command::new("chown").arg("postgres").arg(&pwfile).status();
        let mut init = as_owner(&bin, "initdb");
        init.arg("-D")
            .arg(&data)
            .args([
                "-U",
                "weir",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--no-sync", "-E", "UTF8", "--locale=C"]);
        run(init, "initdb");
        // Another test's server may take the free port first: then try another.
        let port = (0..5)
            .find_map(|_| {
                let port = free_port();
                let mut start = as_owner(&bin, "pg_ctl");
                start
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(dir.path().join("log"))
                    .arg("-o")
                    .arg(format!(
                        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c timezone=UTC -c wal_level=logical -c max_replication_slots=4 -c max_wal_senders=4",
                        dir.path().display()
                    ))
                    .args(["-w", "start"]);
                start.output().ok()?.status.success().then_some(port)
            })
            .unwrap_or_else(|| {
                panic!(
                    "pg_ctl start failed: {}",
                    std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
                )
            });
        let pg = Postgres { dir, bin, port };
        pg.client_to("postgres")
            .batch_execute("CREATE DATABASE weir")
            .unwrap();
        pg
    }

    /// The URL a pipeline's grant uses; the password comes separately.
    pub fn url(&self) -> String {
        format!("postgres://weir@127.0.0.1:{}/weir", self.port)
    }

    fn client_to(&self, db: &str) -> postgres::Client {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user("weir")
            .password(PASSWORD)
            .dbname(db)
            .connect(postgres::NoTls)
            .unwrap()
    }

    pub fn client(&self) -> postgres::Client {
        self.client_to("weir")
    }

    /// `grants.sql` for a pipeline file, with the password read from `file` (relative
    /// to the pipeline file).
    pub fn grant(&self, file: &str) -> String {
        format!(
            "grants.sql = {{ url = \"{}\", password = {{ file = \"{file}\" }} }}",
            self.url()
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut stop = as_owner(&self.bin, "pg_ctl");
        stop.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"]);
        let _ = stop.output();
    }
}
