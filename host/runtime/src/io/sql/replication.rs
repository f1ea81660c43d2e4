//! Logical replication behind `weir:connector/sql.replication`: PostgreSQL's streaming
//! replication protocol on a connection of its own (tokio-postgres does not speak it).
//!
//! Two tasks drive the socket. The reader takes the server's messages into a queue bounded
//! in messages and bytes, so a plugin that stops reading makes the host hold at most that
//! much and then stops reading the socket (TCP pushes back on the server). The writer sends
//! standby status updates: when the plugin confirms a position, when the server asks, and
//! every few seconds, so the server never drops a stream whose plugin is merely slow.
//! Status updates report the confirmed position only, never what was merely received: the
//! slot cannot move past what the pipeline has committed.

use super::SqlGrant;
use super::postgres::{by_sqlstate, describe};
use crate::bindings::weir::connector::sql::{WalMessage, WalRead};
use crate::bindings::weir::connector::types::Error;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

/// Messages the host holds for one stream before it stops reading the socket.
const QUEUED: usize = 1024;
/// Bytes the host holds for one stream before it stops reading the socket (a larger
/// message passes alone).
const QUEUED_BYTES: usize = 16 << 20;
/// The most one `read` hands the guest (at least one message).
const READ_BYTES: usize = 8 << 20;
/// The largest message accepted: a row a plugin cannot take is an error, not a host OOM.
const MESSAGE_LIMIT: usize = 256 << 20;
/// How often the host tells the server it is alive (its wal_sender_timeout is 60 s by
/// default).
const STATUS_INTERVAL: Duration = Duration::from_secs(5);

enum Item {
    Data {
        lsn: u64,
        data: Bytes,
        _held: OwnedSemaphorePermit,
    },
    /// The server had sent everything before this position.
    CaughtUp(u64),
    Failed(Error),
}

pub struct Replication {
    queue: mpsc::Receiver<Item>,
    confirmed: watch::Sender<u64>,
    /// Why the stream ended, for every read after the one that found out.
    failed: Option<Error>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Replication {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Replication {
    pub(super) async fn open(
        grant: &SqlGrant,
        slot: &str,
        start: Option<u64>,
        options: &[(String, String)],
        within: Duration,
    ) -> Result<Replication, Error> {
        let database = describe(&grant.url);
        let config: tokio_postgres::Config = grant
            .url
            .parse()
            .map_err(|_| Error::Config(format!("invalid PostgreSQL URL for {database}")))?;
        let start_at = start.unwrap_or(0);
        let command = start_replication(slot, start_at, options);
        let connect = async {
            let port = config.get_ports().first().copied().unwrap_or(5432);
            match config.get_hosts().first() {
                Some(tokio_postgres::config::Host::Unix(dir)) => {
                    let path = dir.join(format!(".s.PGSQL.{port}"));
                    let stream = tokio::net::UnixStream::connect(&path).await.map_err(|e| {
                        Error::Transient(format!("{database}: cannot connect: {e}"))
                    })?;
                    begin(stream, &config, grant, &database, &command, start_at).await
                }
                Some(tokio_postgres::config::Host::Tcp(host)) => {
                    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
                        .await
                        .map_err(|e| {
                            Error::Transient(format!("{database}: cannot connect: {e}"))
                        })?;
                    let _ = stream.set_nodelay(true);
                    begin(stream, &config, grant, &database, &command, start_at).await
                }
                None => Err(Error::Config(format!("no host in the URL for {database}"))),
            }
        };
        tokio::time::timeout(within, connect)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Transient(format!(
                    "{database}: replication did not start within {within:?}"
                )))
            })
    }

    pub(super) async fn read(&mut self, max: u32, wait: Duration) -> Result<WalRead, Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut read = WalRead {
            messages: Vec::new(),
            caught_up: None,
        };
        let mut bytes = 0;
        let first = match self.queue.try_recv() {
            Ok(item) => Some(item),
            Err(_) => tokio::time::timeout(wait, self.queue.recv())
                .await
                .ok()
                .flatten(),
        };
        let mut next = first;
        while let Some(item) = next {
            match item {
                Item::Data { lsn, data, .. } => {
                    bytes += data.len();
                    read.messages.push(WalMessage {
                        lsn,
                        // The message's own allocation, not a copy of it.
                        data: Vec::from(data),
                    });
                    read.caught_up = None;
                }
                Item::CaughtUp(at) => read.caught_up = Some(at),
                Item::Failed(e) => {
                    self.failed = Some(e.clone());
                    if read.messages.is_empty() {
                        return Err(e);
                    }
                    break;
                }
            }
            if read.messages.len() >= max.max(1) as usize || bytes >= READ_BYTES {
                break;
            }
            next = self.queue.try_recv().ok();
        }
        Ok(read)
    }

    pub(super) fn confirm(&mut self, lsn: u64) {
        self.confirmed.send_if_modified(|at| {
            let forward = lsn > *at;
            if forward {
                *at = lsn;
            }
            forward
        });
    }
}

/// `START_REPLICATION SLOT "slot" LOGICAL X/Y ("name" 'value', ...)`, quoted so nothing
/// the plugin passes can end the command.
fn start_replication(slot: &str, start: u64, options: &[(String, String)]) -> String {
    let mut command = format!(
        "START_REPLICATION SLOT \"{}\" LOGICAL {:X}/{:X}",
        slot.replace('"', "\"\""),
        start >> 32,
        start & 0xFFFF_FFFF
    );
    if !options.is_empty() {
        let options: Vec<String> = options
            .iter()
            .map(|(name, value)| {
                format!(
                    "\"{}\" '{}'",
                    name.replace('"', "\"\""),
                    value.replace('\'', "''")
                )
            })
            .collect();
        command.push_str(&format!(" ({})", options.join(", ")));
    }
    command
}

/// Logs in as a replication client, starts the stream and hands the socket to its tasks.
async fn begin<S>(
    stream: S,
    config: &tokio_postgres::Config,
    grant: &SqlGrant,
    database: &str,
    command: &str,
    start: u64,
) -> Result<Replication, Error>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut read = BufReader::new(read);
    let user = config.get_user().unwrap_or_default();
    let password = grant
        .password
        .as_deref()
        .map(str::as_bytes)
        .or(config.get_password());
    let io = |e: std::io::Error| Error::Transient(format!("{database}: replication: {e}"));
    let mut out = BytesMut::new();
    // Values come out the way the database reads them back, whatever the server's
    // defaults: ISO dates and all the digits of a float.
    frontend::startup_message(
        [
            ("user", user),
            ("database", config.get_dbname().unwrap_or(user)),
            ("replication", "database"),
            ("application_name", "weir"),
            (
                "options",
                "-c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3",
            ),
        ],
        &mut out,
    )
    .map_err(io)?;
    send(&mut write, &mut out).await.map_err(io)?;
    let mut scram = None;
    loop {
        let (tag, mut body) = frame(&mut read).await.map_err(io)?;
        match tag {
            b'R' => {
                let kind = body.get_i32();
                let password = || {
                    password.ok_or_else(|| {
                        Error::Config(format!("{database}: the server wants a password"))
                    })
                };
                match kind {
                    0 => {}
                    3 => frontend::password_message(password()?, &mut out).map_err(io)?,
                    5 => {
                        let salt = [body[0], body[1], body[2], body[3]];
                        let hash = md5_hash(user.as_bytes(), password()?, salt);
                        frontend::password_message(hash.as_bytes(), &mut out).map_err(io)?;
                    }
                    10 => {
                        let offered = cstrings(&body);
                        if !offered.iter().any(|m| m == sasl::SCRAM_SHA_256) {
                            return Err(Error::Config(format!(
                                "{database}: the server offers no login weir speaks ({offered:?})"
                            )));
                        }
                        let s = sasl::ScramSha256::new(
                            password()?,
                            sasl::ChannelBinding::unsupported(),
                        );
                        frontend::sasl_initial_response(sasl::SCRAM_SHA_256, s.message(), &mut out)
                            .map_err(io)?;
                        scram = Some(s);
                    }
                    11 | 12 => {
                        let s = scram.as_mut().ok_or_else(|| {
                            Error::Fatal(format!("{database}: SASL out of order"))
                        })?;
                        let step = if kind == 11 {
                            s.update(&body)
                        } else {
                            s.finish(&body)
                        };
                        step.map_err(|e| Error::Config(format!("{database}: login: {e}")))?;
                        if kind == 11 {
                            frontend::sasl_response(s.message(), &mut out).map_err(io)?;
                        }
                    }
                    other => {
                        return Err(Error::Config(format!(
                            "{database}: the server wants a login weir does not speak ({other})"
                        )));
                    }
                }
                if !out.is_empty() {
                    send(&mut write, &mut out).await.map_err(io)?;
                }
            }
            b'E' => return Err(server_error(database, "cannot start replication", &body)),
            b'Z' => break,
            // Parameter status, backend key, notices.
            _ => {}
        }
    }
    frontend::query(command, &mut out).map_err(io)?;
    send(&mut write, &mut out).await.map_err(io)?;
    loop {
        let (tag, body) = frame(&mut read).await.map_err(io)?;
        match tag {
            // CopyBothResponse: the stream is on.
            b'W' => break,
            b'E' => return Err(server_error(database, "cannot start replication", &body)),
            _ => {}
        }
    }
    let (queue_in, queue) = mpsc::channel(QUEUED);
    let (confirmed, confirmed_out) = watch::channel(start);
    let asked = Arc::new(Notify::new());
    let reader = tokio::spawn(receive(read, queue_in, asked.clone(), database.to_string()));
    let writer = tokio::spawn(report(write, confirmed_out, asked));
    Ok(Replication {
        queue,
        confirmed,
        failed: None,
        tasks: [reader, writer],
    })
}

async fn send<W: AsyncWrite + Unpin>(write: &mut W, out: &mut BytesMut) -> std::io::Result<()> {
    write.write_all(out).await?;
    write.flush().await?;
    out.clear();
    Ok(())
}

/// One backend message: its tag and body.
async fn frame<R: AsyncRead + Unpin>(read: &mut R) -> std::io::Result<(u8, Bytes)> {
    let tag = read.read_u8().await?;
    let len = read.read_i32().await?;
    let len = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_sub(4))
        .ok_or_else(|| std::io::Error::other(format!("a message with length {len}")))?;
    if len > MESSAGE_LIMIT {
        return Err(std::io::Error::other(format!(
            "a message of {len} bytes, over the {} MiB the host takes",
            MESSAGE_LIMIT >> 20
        )));
    }
    let mut body = vec![0; len];
    read.read_exact(&mut body).await?;
    Ok((tag, Bytes::from(body)))
}

fn cstrings(body: &[u8]) -> Vec<String> {
    body.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// An ErrorResponse's message and SQLSTATE, typed as the SQL interface types them.
fn server_error(database: &str, what: &str, body: &[u8]) -> Error {
    let (mut code, mut message, mut severity) = (String::new(), String::new(), String::new());
    for field in body.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let text = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'C' => code = text,
            b'M' => message = text,
            b'S' => severity = text,
            _ => {}
        }
    }
    by_sqlstate(
        &code,
        format!("{database}: {what}: {message} ({severity}: {code})"),
    )
}

/// Microseconds since 2000-01-01, the protocol's clock.
fn now_micros() -> i64 {
    const POSTGRES_EPOCH: u64 = 946_684_800;
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    since.as_micros() as i64 - (POSTGRES_EPOCH as i64) * 1_000_000
}

/// Reads the stream into the queue until the socket or the server ends it.
async fn receive<R: AsyncRead + Unpin>(
    mut read: R,
    queue: mpsc::Sender<Item>,
    asked: Arc<Notify>,
    database: String,
) {
    let held = Arc::new(Semaphore::new(QUEUED_BYTES));
    let failure = loop {
        let (tag, mut body) = match frame(&mut read).await {
            Ok(frame) => frame,
            Err(e) => break Error::Transient(format!("{database}: replication: {e}")),
        };
        let item = match tag {
            b'd' if body.first() == Some(&b'w') && body.len() >= 25 => {
                body.advance(1);
                let lsn = body.get_u64();
                body.advance(16); // the server's WAL end and clock
                let cost = body.len().clamp(1, QUEUED_BYTES) as u32;
                let Ok(permit) = held.clone().acquire_many_owned(cost).await else {
                    return;
                };
                Item::Data {
                    lsn,
                    data: body,
                    _held: permit,
                }
            }
            b'd' if body.first() == Some(&b'k') && body.len() >= 18 => {
                body.advance(1);
                let end = body.get_u64();
                body.advance(8);
                if body.get_u8() == 1 {
                    asked.notify_one();
                }
                Item::CaughtUp(end)
            }
            b'E' => break server_error(&database, "replication failed", &body),
            b'c' => {
                break Error::Transient(format!("{database}: the server ended replication"));
            }
            _ => continue,
        };
        if queue.send(item).await.is_err() {
            return;
        }
    };
    let _ = queue.send(Item::Failed(failure)).await;
}

/// Sends the confirmed position: when it moves, when the server asks, and every
/// `STATUS_INTERVAL`.
async fn report<W: AsyncWrite + Unpin>(
    mut write: W,
    mut confirmed: watch::Receiver<u64>,
    asked: Arc<Notify>,
) {
    let mut tick =
        tokio::time::interval_at((Instant::now() + STATUS_INTERVAL).into(), STATUS_INTERVAL);
    let mut out = BytesMut::new();
    loop {
        tokio::select! {
            changed = confirmed.changed() => if changed.is_err() { return },
            () = asked.notified() => {}
            _ = tick.tick() => {}
        }
        let at = *confirmed.borrow_and_update();
        let mut update = BytesMut::with_capacity(34);
        update.put_u8(b'r');
        update.put_u64(at); // written
        update.put_u64(at); // flushed
        update.put_u64(at); // applied
        update.put_i64(now_micros());
        update.put_u8(0);
        frontend::CopyData::new(update.freeze())
            .expect("a status update fits a message")
            .write(&mut out);
        if send(&mut write, &mut out).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::start_replication;

    #[test]
    fn the_command_quotes_what_the_plugin_passes() {
        let command = start_replication(
            "a\" (x",
            (1 << 32) | 0x10,
            &[("add-tables".into(), "p.t', x 'y".into())],
        );
        assert_eq!(
            command,
            "START_REPLICATION SLOT \"a\"\" (x\" LOGICAL 1/10 (\"add-tables\" 'p.t'', x ''y')"
        );
    }
}
