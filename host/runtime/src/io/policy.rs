//! Which client settings a pipeline may hand to the host's native clients (librdkafka,
//! the PostgreSQL client). A pipeline is the tenant's to write in `weir serve`, so a setting
//! that loads code, names a host file, runs a command, changes where the client connects
//! or what it logs is the operator's alone: refused here, naming the setting, unless the
//! operator allows it (`weir run --allow-client-setting`, or a tenant's grants in
//! `weir serve`, which only the admin writes).

use std::collections::{BTreeMap, BTreeSet};

/// librdkafka properties any pipeline may set: sizes, timeouts, batching, compression,
/// offsets. The host sets the delivery guarantees (idempotence, acks) after these, so
/// none of them can weaken what a flush means.
const KAFKA_PIPELINE_PROPERTIES: &[&str] = &[
    "acks",
    "auto.offset.reset",
    "batch.num.messages",
    "batch.size",
    "check.crcs",
    "client.id",
    "compression.codec",
    "compression.level",
    "compression.type",
    "connections.max.idle.ms",
    "delivery.timeout.ms",
    "fetch.error.backoff.ms",
    "fetch.max.bytes",
    "fetch.message.max.bytes",
    "fetch.min.bytes",
    "fetch.queue.backoff.ms",
    "fetch.wait.max.ms",
    "heartbeat.interval.ms",
    "isolation.level",
    "linger.ms",
    "max.in.flight",
    "max.in.flight.requests.per.connection",
    "max.partition.fetch.bytes",
    "max.poll.interval.ms",
    "message.max.bytes",
    "message.timeout.ms",
    "metadata.max.age.ms",
    "partition.assignment.strategy",
    "partitioner",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.messages",
    "queue.buffering.max.ms",
    "queued.max.messages.kbytes",
    "queued.min.messages",
    "receive.message.max.bytes",
    "reconnect.backoff.max.ms",
    "reconnect.backoff.ms",
    "request.timeout.ms",
    "retries",
    "retry.backoff.max.ms",
    "retry.backoff.ms",
    "session.timeout.ms",
    "socket.connection.setup.timeout.ms",
    "socket.keepalive.enable",
    "socket.timeout.ms",
    "sticky.partitioning.linger.ms",
    "topic.metadata.refresh.interval.ms",
];

/// PostgreSQL connection URL parameters any pipeline may set. `host`, `hostaddr`, `port`,
/// `user`, `password`, `dbname` change where and as whom it connects (and a `host` that is
/// a path is a host socket); `options` sets server settings; `replication` the protocol.
const SQL_PIPELINE_PARAMETERS: &[&str] = &[
    "application_name",
    "channel_binding",
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "load_balance_hosts",
    "sslmode",
    "target_session_attrs",
    "tcp_user_timeout",
];

#[derive(Debug, Clone, Default)]
pub struct ClientPolicy {
    /// Settings the operator allows beyond the pipeline-safe ones: librdkafka property
    /// names and PostgreSQL URL parameters (`host` also allows a socket path as the host).
    pub allowed: BTreeSet<String>,
}

impl ClientPolicy {
    fn allows(&self, safe: &[&str], name: &str) -> bool {
        safe.contains(&name) || self.allowed.contains(name)
    }

    /// Every property outside the allowlist, named.
    pub fn check_kafka(&self, properties: &BTreeMap<String, String>) -> Result<(), String> {
        let refused: Vec<&str> = properties
            .keys()
            .map(String::as_str)
            .filter(|k| !self.allows(KAFKA_PIPELINE_PROPERTIES, k))
            .collect();
        refuse(
            ("Kafka client property", "Kafka client properties"),
            &refused,
        )
    }

    /// Every URL parameter outside the allowlist, and a socket path as the host.
    pub fn check_sql_url(&self, url: &str) -> Result<(), String> {
        let (address, query) = url.split_once('?').unwrap_or((url, ""));
        let mut refused: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').map_or(p, |(k, _)| k))
            .filter(|k| !self.allows(SQL_PIPELINE_PARAMETERS, k))
            .collect();
        let host = address
            .split_once("://")
            .map_or(address, |(_, rest)| rest)
            .rsplit_once('@')
            .map_or(address, |(_, host)| host);
        if (host.starts_with('/') || host.to_ascii_lowercase().starts_with("%2f"))
            && !self.allowed.contains("host")
        {
            refused.push("host (a socket path)");
        }
        refuse(
            (
                "PostgreSQL connection parameter",
                "PostgreSQL connection parameters",
            ),
            &refused,
        )
    }
}

fn refuse((one, many): (&str, &str), refused: &[&str]) -> Result<(), String> {
    match refused {
        [] => Ok(()),
        [name] => Err(format!(
            "{one} `{name}` is not one a pipeline may set: it is the operator's \
             (weir run --allow-client-setting {name}, or the tenant's grants)"
        )),
        names => Err(format!(
            "{many} {} are not ones a pipeline may set: they are the operator's \
             (weir run --allow-client-setting NAME, or the tenant's grants)",
            names
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(keys: &[&str]) -> BTreeMap<String, String> {
        keys.iter().map(|k| (k.to_string(), "x".into())).collect()
    }

    #[test]
    fn kafka_properties_that_load_read_run_or_redirect_are_refused() {
        let policy = ClientPolicy::default();
        policy
            .check_kafka(&props(&[
                "auto.offset.reset",
                "compression.type",
                "linger.ms",
            ]))
            .unwrap();
        for bad in [
            "plugin.library.paths",
            "ssl.key.location",
            "ssl.ca.location",
            "ssl.engine.location",
            "sasl.kerberos.kinit.cmd",
            "oauthbearer.token.endpoint.url",
            "debug",
            "log_level",
            "bootstrap.servers",
            "group.id",
            "enable.idempotence",
        ] {
            let err = policy.check_kafka(&props(&["linger.ms", bad])).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
        let operator = ClientPolicy {
            allowed: ["ssl.ca.location".to_string()].into(),
        };
        operator.check_kafka(&props(&["ssl.ca.location"])).unwrap();
    }

    #[test]
    fn sql_parameters_that_redirect_or_reconfigure_are_refused() {
        let policy = ClientPolicy::default();
        policy
            .check_sql_url("postgres://weir@db:5432/shop?connect_timeout=5&sslmode=prefer")
            .unwrap();
        for (url, bad) in [
            ("postgres://weir@db/shop?host=/var/run/postgresql", "`host`"),
            ("postgres://weir@db/shop?hostaddr=10.0.0.1", "`hostaddr`"),
            (
                "postgres://weir@db/shop?options=-c%20log_statement%3Dall",
                "`options`",
            ),
            ("postgres://weir@db/shop?user=postgres", "`user`"),
            (
                "postgres://weir@%2Fvar%2Frun%2Fpostgresql/shop",
                "socket path",
            ),
        ] {
            let err = policy.check_sql_url(url).unwrap_err();
            assert!(err.contains(bad), "{url}: {err}");
        }
    }
}
