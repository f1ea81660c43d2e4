//! Tenants: what each may run (quotas) and reach (grants). A pipeline's own grants must
//! fit inside its tenant's, so a plugin never gets more than the operator gave its tenant.

use crate::resolver::TenantResolver;
use anyhow::{Result, bail, ensure};
use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use weir_pipeline::{DeadLetterTarget, Pipeline, PipelineSpec, Side};
use weir_runtime::confined::{normalize, overlap};
use weir_runtime::patterns::{dir_covers, host_covers, location_covers, topic_covers};
use weir_runtime::{KafkaGrant, KinesisGrant, ObjectLocation, Sandbox};

/// Limits on a tenant's pipelines. Every pipeline's own limits default to these and may
/// not exceed them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    pub max_pipelines: u32,
    /// Linear memory per plugin instance.
    pub memory: ByteSize,
    /// Wall-clock time per call (time waiting in the host counts): a call running longer
    /// is interrupted (epoch deadline).
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// CPU share of all the tenant's pipelines together, in cores (0.5: half a core);
    /// none is unlimited.
    pub cpu: Option<f64>,
    /// Record bytes per batch a source may hand the host.
    pub max_batch_bytes: ByteSize,
    /// Consecutive failed runs after which a pipeline stops restarting.
    pub max_failures: u32,
    /// The wait before the first restart; it doubles with each failure after that.
    #[serde(with = "humantime_serde")]
    pub restart_backoff: Duration,
    /// Each instance's log budget, per second.
    pub log_lines_per_second: u32,
    pub log_bytes_per_second: ByteSize,
    /// Host resources each instance may hold at once.
    pub sql_connections: u32,
    pub kafka_clients: u32,
    pub kinesis_readers: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        let limits = weir_runtime::Limits::default();
        Quotas {
            max_pipelines: 20,
            memory: ByteSize::b(limits.memory),
            call_timeout: limits.call_timeout,
            cpu: None,
            max_batch_bytes: ByteSize::b(limits.max_batch_bytes),
            max_failures: 5,
            restart_backoff: Duration::from_secs(1),
            log_lines_per_second: limits.log_lines_per_second,
            log_bytes_per_second: ByteSize::b(limits.log_bytes_per_second),
            sql_connections: limits.sql_connections,
            kafka_clients: limits.kafka_clients,
            kinesis_readers: limits.kinesis_readers,
        }
    }
}

/// What a tenant's pipelines may reach. Nothing by default.
///
/// Each grant has the shape of the pipeline grant it bounds (`grants.dirs`, `grants.http`,
/// `grants.sql`, `grants.objects`, `grants.kafka`, `grants.kinesis`), so an operator can
/// copy one into the other. What only a pipeline gives (a directory's `guest` path, secrets,
/// a Kafka `group`, an HTTP `max_response`) is refused here, by name. Older short forms (a
/// list of hosts, of URLs; `path` for `host`) are still read, so stored tenants load.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Grants {
    /// Host directories (absolute) the tenant's pipelines may grant, and below them only.
    pub dirs: Vec<TenantDir>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpTenantGrant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaTenantGrant>,
    /// PostgreSQL databases (URLs without password) the tenant's pipelines may open.
    #[serde(deserialize_with = "one_or_many::<_, SqlTenantGrant>")]
    pub sql: Vec<SqlTenantGrant>,
    /// Stores (`s3://bucket/prefix` or a directory) the tenant's pipelines may use, or
    /// below them.
    #[serde(deserialize_with = "one_or_many::<_, ObjectsTenantGrant>")]
    pub objects: Vec<ObjectsTenantGrant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kinesis: Option<KinesisTenantGrant>,
}

/// One grant or a list of them (a tenant may have several databases or stores where a
/// pipeline side has one). An entry may also be a bare URL.
fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + From<String>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entry<T> {
        Url(String),
        Grant(T),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape<T> {
        Many(Vec<Entry<T>>),
        One(Entry<T>),
    }
    let entry = |e: Entry<T>| match e {
        Entry::Url(url) => T::from(url),
        Entry::Grant(g) => g,
    };
    Ok(match Shape::<T>::deserialize(d)? {
        Shape::Many(entries) => entries.into_iter().map(entry).collect(),
        Shape::One(e) => vec![entry(e)],
    })
}

/// A field only a pipeline gives: read so that it can be refused by name.
type PipelineOnly = Option<serde::de::IgnoredAny>;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantDir {
    #[serde(alias = "path")]
    pub host: PathBuf,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub write: bool,
    #[serde(default, skip_serializing)]
    pub guest: PipelineOnly,
}

/// Hosts for outgoing HTTP: `host`, `host:port` or `*.domain`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HttpTenantGrant {
    pub hosts: Vec<String>,
    #[serde(skip)]
    pub max_response: PipelineOnly,
}

impl<'de> Deserialize<'de> for HttpTenantGrant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            hosts: Vec<String>,
            #[serde(default)]
            max_response: PipelineOnly,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Hosts(Vec<String>),
            Table(Table),
        }
        Ok(match Shape::deserialize(d)? {
            Shape::Hosts(hosts) => HttpTenantGrant {
                hosts,
                max_response: None,
            },
            Shape::Table(t) => HttpTenantGrant {
                hosts: t.hosts,
                max_response: t.max_response,
            },
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlTenantGrant {
    /// `postgres://user@host:port/database`
    pub url: String,
    #[serde(default, skip_serializing)]
    pub password: PipelineOnly,
}

impl From<String> for SqlTenantGrant {
    fn from(url: String) -> Self {
        SqlTenantGrant {
            url,
            password: None,
        }
    }
}

/// A store a tenant may use: `{ url = "s3://bucket/prefix" }` (with `endpoint` for
/// another S3 API than AWS's) or `{ dir = "/abs" }`. A pipeline's `endpoint` must be this
/// one: the host signs requests with the pipeline's keys and sends them wherever the
/// endpoint says.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectsTenantGrant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The bucket's region, if the tenant's pipelines must use that one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing)]
    pub access_key_id: PipelineOnly,
    #[serde(default, skip_serializing)]
    pub secret_access_key: PipelineOnly,
    #[serde(default, skip_serializing)]
    pub session_token: PipelineOnly,
}

impl From<String> for ObjectsTenantGrant {
    /// The short form: an `s3://` URL, or an absolute directory.
    fn from(location: String) -> Self {
        if location.contains("://") {
            ObjectsTenantGrant {
                url: Some(location),
                ..Default::default()
            }
        } else {
            ObjectsTenantGrant {
                dir: Some(location.into()),
                ..Default::default()
            }
        }
    }
}

impl ObjectsTenantGrant {
    /// The store, as the pipeline's is compared with it: its URL or its directory.
    fn location(&self) -> String {
        match (&self.url, &self.dir) {
            (Some(url), _) => url.clone(),
            (None, Some(dir)) => dir.display().to_string(),
            (None, None) => String::new(),
        }
    }
}

/// Kinesis streams a tenant's pipelines may use: one region and endpoint (the host signs
/// with the pipeline's credentials and sends wherever the endpoint says), and the streams.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisTenantGrant {
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Stream names or `*` patterns.
    pub streams: Vec<String>,
    #[serde(default, skip_serializing)]
    pub access_key_id: PipelineOnly,
    #[serde(default, skip_serializing)]
    pub secret_access_key: PipelineOnly,
    #[serde(default, skip_serializing)]
    pub session_token: PipelineOnly,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTenantGrant {
    pub brokers: String,
    /// Topic names or `*` patterns.
    pub topics: Vec<String>,
    /// librdkafka properties for every client of the tenant's pipelines (credentials, TLS
    /// files): the admin's, so any property is allowed here, and they override a pipeline's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    #[serde(default, skip_serializing)]
    pub group: PipelineOnly,
}

impl Quotas {
    /// The most a plugin instance of this tenant gets.
    pub fn limits(&self) -> weir_runtime::Limits {
        weir_runtime::Limits {
            memory: self.memory.as_u64(),
            call_timeout: self.call_timeout,
            max_batch_bytes: self.max_batch_bytes.as_u64(),
            log_lines_per_second: self.log_lines_per_second,
            log_bytes_per_second: self.log_bytes_per_second.as_u64(),
            sql_connections: self.sql_connections,
            kafka_clients: self.kafka_clients,
            kinesis_readers: self.kinesis_readers,
        }
    }

    pub fn check(&self) -> Result<()> {
        if let Some(cpu) = self.cpu {
            ensure!(
                cpu.is_finite() && cpu > 0.0,
                "quotas.cpu: {cpu} is not a positive number of cores"
            );
        }
        ensure!(
            self.max_failures >= 1,
            "quotas.max_failures must be at least 1"
        );
        Ok(())
    }
}

impl Grants {
    /// Refuses anything but absolute directories (a relative one would depend on where
    /// `weir serve` happened to start), and any that holds or lies in the server's own
    /// `reserved` directories: a plugin writing there would reach the registry, the
    /// checkpoints or another tenant's watched plugins.
    pub fn check(&self, reserved: &[PathBuf]) -> Result<()> {
        let mut only = Vec::new();
        let mut pipeline_only = |given: bool, field: String| {
            if given {
                only.push(field);
            }
        };
        for (i, d) in self.dirs.iter().enumerate() {
            pipeline_only(d.guest.is_some(), format!("grants.dirs[{i}].guest"));
        }
        if let Some(http) = &self.http {
            pipeline_only(
                http.max_response.is_some(),
                "grants.http.max_response".into(),
            );
        }
        for (i, s) in self.sql.iter().enumerate() {
            pipeline_only(s.password.is_some(), format!("grants.sql[{i}].password"));
        }
        // AWS credentials, as an S3 store's or a Kinesis grant's fields.
        let aws = |id: &PipelineOnly, secret: &PipelineOnly, token: &PipelineOnly| {
            [
                ("access_key_id", id.is_some()),
                ("secret_access_key", secret.is_some()),
                ("session_token", token.is_some()),
            ]
        };
        let stores = self.objects.iter().enumerate().map(|(i, o)| {
            let keys = aws(&o.access_key_id, &o.secret_access_key, &o.session_token);
            (format!("grants.objects[{i}]"), keys)
        });
        let streams = self.kinesis.iter().map(|k| {
            let keys = aws(&k.access_key_id, &k.secret_access_key, &k.session_token);
            ("grants.kinesis".to_string(), keys)
        });
        for (at, keys) in stores.chain(streams) {
            for (name, given) in keys {
                pipeline_only(given, format!("{at}.{name}"));
            }
        }
        if let Some(k) = &self.kafka {
            pipeline_only(k.group.is_some(), "grants.kafka.group".into());
        }
        ensure!(
            only.is_empty(),
            "{}: each pipeline gives its own (a guest path, a secret, a group, a response \
             bound); a tenant grant only bounds what its pipelines may reach",
            only.join(", ")
        );
        for (i, o) in self.objects.iter().enumerate() {
            match (&o.url, &o.dir) {
                (Some(_), None) => {}
                (None, Some(dir)) => ensure!(
                    dir.is_absolute() && o.endpoint.is_none() && o.region.is_none(),
                    "grants.objects[{i}]: `dir` must be an absolute path, without endpoint or region"
                ),
                _ => bail!("grants.objects[{i}]: give either `url` (s3://bucket/prefix) or `dir`"),
            }
        }
        for d in &self.dirs {
            ensure!(
                d.host.is_absolute(),
                "grants.dirs: `{}` is not an absolute path",
                d.host.display()
            );
            let real = d.host.canonicalize().unwrap_or_else(|_| normalize(&d.host));
            if let Some(r) = reserved.iter().find(|r| overlap(&real, r)) {
                bail!(
                    "grants.dirs: `{}` overlaps the server's own directory {}",
                    d.host.display(),
                    r.display()
                );
            }
        }
        Ok(())
    }

    /// The tenant's directories, as anchors for every host path of its pipelines: as the
    /// admin wrote them, and where they resolve (a path may be written either way).
    pub fn roots(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .flat_map(|d| [Some(normalize(&d.host)), d.host.canonicalize().ok()])
            .flatten()
            .collect()
    }

    /// A stored spec resolved inside this tenant (see `TenantResolver`): every host path
    /// in its directories, client settings held to what a pipeline may set, its grants
    /// within the tenant's, then the tenant's own client properties added.
    pub fn resolve(
        &self,
        spec: &PipelineSpec,
        plugin: &dyn Fn(Side, &str) -> Result<PathBuf>,
    ) -> Result<Pipeline> {
        let mut pipeline = weir_pipeline::resolve(spec, &TenantResolver::new(self, plugin))?;
        let excess = self.excess(&pipeline);
        if !excess.is_empty() {
            bail!(
                "the pipeline reaches beyond its tenant's grants:\n  - {}",
                excess.join("\n  - ")
            );
        }
        self.apply_client_properties(&mut pipeline);
        Ok(pipeline)
    }

    /// Adds the tenant's own client properties to every Kafka grant of `p`.
    fn apply_client_properties(&self, p: &mut Pipeline) {
        let Some(tenant) = &self.kafka else { return };
        let grants = std::iter::once(&mut p.source)
            .chain(&mut p.transforms)
            .chain(std::iter::once(&mut p.sink))
            .filter_map(|e| e.sandbox.kafka.as_mut())
            .chain(match &mut p.dead_letter {
                Some(DeadLetterTarget::Kafka { grant, .. }) => Some(grant),
                _ => None,
            });
        for grant in grants {
            grant.properties.extend(tenant.properties.clone());
        }
    }

    /// Every way the pipeline's network and store grants reach beyond this tenant's,
    /// each naming the field. (Directories are held by the resolver, path by path.)
    pub fn excess(&self, p: &Pipeline) -> Vec<String> {
        let mut found = Vec::new();
        for side in p.sides() {
            let at = format!("{}.grants", side.field());
            self.sandbox_excess(&at, &p.endpoint(side).sandbox, &mut found);
        }
        if let Some(DeadLetterTarget::Kafka { grant, .. }) = &p.dead_letter {
            self.kafka_excess("dead_letter.kafka", grant, &mut found)
        }
        found
    }

    fn sandbox_excess(&self, at: &str, s: &Sandbox, found: &mut Vec<String>) {
        if let Some(http) = &s.http {
            let tenant: &[String] = self.http.as_ref().map_or(&[], |h| &h.hosts);
            for host in http.hosts.iter().filter(|h| !host_covers(tenant, h)) {
                found.push(format!(
                    "{at}.http: host `{host}` is not granted to the tenant"
                ));
            }
        }
        if let Some(kafka) = &s.kafka {
            self.kafka_excess(&format!("{at}.kafka"), kafka, found);
        }
        if let Some(kinesis) = &s.kinesis {
            self.kinesis_excess(&format!("{at}.kinesis"), kinesis, found);
        }
        if let Some(sql) = &s.sql
            && !self.sql.iter().any(|g| g.url == sql.url)
        {
            found.push(format!(
                "{at}.sql: `{}` is not a database granted to the tenant",
                sql.url
            ));
        }
        if let Some(objects) = &s.objects {
            let inside = |allowed: &ObjectsTenantGrant| match &objects.location {
                ObjectLocation::Dir(dir) => allowed.dir.as_deref().is_some_and(|allowed| {
                    allowed.is_absolute() && dir_covers(allowed, &dir.path())
                }),
                ObjectLocation::S3 { .. } => allowed
                    .url
                    .as_deref()
                    .is_some_and(|url| location_covers(url, &objects.describe)),
            };
            match self.objects.iter().find(|a| inside(a)) {
                None => found.push(format!(
                    "{at}.objects: `{}` is not a store granted to the tenant",
                    objects.describe
                )),
                Some(granted) => {
                    if let ObjectLocation::S3 {
                        endpoint, region, ..
                    } = &objects.location
                    {
                        if endpoint.as_deref() != granted.endpoint.as_deref() {
                            found.push(format!(
                                "{at}.objects.endpoint: `{}` is not the endpoint granted to the tenant for {}",
                                endpoint.as_deref().unwrap_or("(AWS)"),
                                granted.location()
                            ));
                        }
                        if let Some(want) = &granted.region
                            && want != region
                        {
                            found.push(format!(
                                "{at}.objects.region: `{region}` is not the region granted to the tenant for {} (`{want}`)",
                                granted.location()
                            ));
                        }
                    }
                }
            }
        }
    }

    fn kinesis_excess(&self, at: &str, k: &KinesisGrant, found: &mut Vec<String>) {
        let Some(tenant) = &self.kinesis else {
            found.push(format!("{at}: the tenant has no Kinesis grant"));
            return;
        };
        if (&tenant.region, &tenant.endpoint) != (&k.region, &k.endpoint) {
            found.push(format!(
                "{at}: region `{}` at `{}` is not the tenant's",
                k.region,
                k.endpoint.as_deref().unwrap_or("(AWS)")
            ));
        }
        for stream in k
            .streams
            .iter()
            .filter(|s| !topic_covers(&tenant.streams, s))
        {
            found.push(format!(
                "{at}.streams: `{stream}` is not granted to the tenant"
            ));
        }
    }

    fn kafka_excess(&self, at: &str, k: &KafkaGrant, found: &mut Vec<String>) {
        let Some(tenant) = &self.kafka else {
            found.push(format!("{at}: the tenant has no Kafka grant"));
            return;
        };
        if tenant.brokers != k.brokers {
            found.push(format!(
                "{at}.brokers: `{}` is not the tenant's cluster",
                k.brokers
            ));
        }
        for topic in k.topics.iter().filter(|t| !topic_covers(&tenant.topics, t)) {
            found.push(format!(
                "{at}.topics: `{topic}` is not granted to the tenant"
            ));
        }
    }

    /// Whether `dir` (absolute) lies in one of the tenant's directories (a writable one if
    /// `write`): lexically, as the admin wrote it or where it resolves, and also where it
    /// leads on disk now, so that a link in a tenant's directory does not lead elsewhere.
    pub fn dir_allows(&self, dir: &Path, write: bool) -> bool {
        self.dirs
            .iter()
            .any(|d| (d.write || !write) && dir_covers(&d.host, dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_pipeline::FileResolver;
    use weir_pipeline::spec::LimitsSpec;
    use weir_runtime::io::ClientPolicy;

    #[test]
    fn quotas_fill_and_bound_limits() {
        let q = Quotas {
            memory: ByteSize::mib(64),
            call_timeout: Duration::from_secs(2),
            ..Quotas::default()
        }
        .limits();
        let limits = |v: serde_json::Value| -> LimitsSpec { serde_json::from_value(v).unwrap() };
        let filled = serde_json::to_value(limits(json!({})).within(&q).unwrap()).unwrap();
        assert_eq!(filled["memory"], "64.0 MiB");
        assert_eq!(filled["call_timeout"], "2s");
        let within = limits(json!({"memory": "32 MiB", "call_timeout": "500ms"}))
            .within(&q)
            .unwrap();
        assert_eq!(within.memory, Some(ByteSize::mib(32)));
        let err = limits(json!({"memory": "1 GiB"}))
            .within(&q)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("limits.memory") && err.contains("quota"),
            "{err}"
        );
        let err = limits(json!({"call_timeout": "1m"}))
            .within(&q)
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.call_timeout"), "{err}");
    }

    /// A pipeline asking for `grants` on its source, resolved as `weir run` would (so that
    /// `excess` sees all of it).
    fn asking(grants: serde_json::Value) -> Pipeline {
        let spec = PipelineSpec::from_json(json!({
            "name": "p",
            "source": { "plugin": "s", "grants": grants },
            "sink": { "plugin": "k" },
        }))
        .unwrap();
        let r = FileResolver {
            base: "/".into(),
            anchors: Vec::new(),
            policy: &ClientPolicy::default(),
        };
        weir_pipeline::resolve(&spec, &r).unwrap()
    }

    #[test]
    fn kinesis_grants_must_be_the_tenants_region_endpoint_and_streams() {
        let tenant: Grants = serde_json::from_value(json!({
            "kinesis": { "region": "eu-west-1", "streams": ["acme-*"] },
        }))
        .unwrap();
        // Any variable that is set stands in for the keys here.
        let kinesis = |region: &str, endpoint: Option<&str>, streams: &[&str]| {
            asking(json!({ "kinesis": {
                "region": region, "endpoint": endpoint, "streams": streams,
                "access_key_id": { "env": "PATH" }, "secret_access_key": { "env": "PATH" },
            }}))
        };
        let fits = kinesis("eu-west-1", None, &["acme-orders", "acme-*"]);
        assert_eq!(tenant.excess(&fits), Vec::<String>::new());
        let excess = tenant
            .excess(&kinesis(
                "eu-west-1",
                Some("http://10.0.0.1:4568"),
                &["billing", "*"],
            ))
            .join("\n");
        for expected in [
            "source.grants.kinesis: region `eu-west-1` at `http://10.0.0.1:4568` is not the tenant's",
            "source.grants.kinesis.streams: `billing` is not granted to the tenant",
            "source.grants.kinesis.streams: `*` is not granted to the tenant",
        ] {
            assert!(excess.contains(expected), "{expected} not in {excess}");
        }
        let none = Grants::default().excess(&fits).join("\n");
        assert!(none.contains("the tenant has no Kinesis grant"), "{none}");
    }

    #[test]
    fn network_grants_must_be_within_the_tenants() {
        let tenant: Grants = serde_json::from_value(json!({
            "http": { "hosts": ["api.acme.com", "*.acme-data.com"] },
            "kafka": { "brokers": "k:9092", "topics": ["acme.*", "shared"] },
            "sql": { "url": "postgres://acme@db:5432/acme" },
            "objects": [
                { "url": "s3://landing/acme" },
                { "url": "s3://minio/acme", "endpoint": "http://127.0.0.1:9000" },
            ],
        }))
        .unwrap();
        let fits = asking(json!({
            "http": { "hosts": ["api.acme.com", "eu.acme-data.com:443"] },
            "kafka": { "brokers": "k:9092", "topics": ["acme.orders", "shared"] },
            "sql": { "url": "postgres://acme@db:5432/acme" },
            "objects": { "url": "s3://landing/acme/2026" },
        }));
        assert_eq!(tenant.excess(&fits), Vec::<String>::new());

        let greedy = asking(json!({
            "http": { "hosts": ["evil.com", "*.com"] },
            "kafka": { "brokers": "other:9092", "topics": ["billing", "acme.*", "*"] },
            "sql": { "url": "postgres://acme@db:5432/billing" },
            "objects": { "url": "s3://landing/acme-other" },
        }));
        let elsewhere = asking(json!({
            "objects": { "url": "s3://landing/acme/x", "endpoint": "http://169.254.169.254" },
        }));
        let moved = asking(json!({
            "objects": { "url": "s3://minio/acme/x", "endpoint": "http://10.1.1.1:9000" },
        }));
        for p in [&elsewhere, &moved] {
            let excess = tenant.excess(p).join("\n");
            assert!(
                excess.contains("source.grants.objects.endpoint"),
                "{excess}"
            );
        }
        let same = asking(json!({
            "objects": { "url": "s3://minio/acme/x", "endpoint": "http://127.0.0.1:9000" },
        }));
        assert_eq!(tenant.excess(&same), Vec::<String>::new());
        let excess = tenant.excess(&greedy).join("\n");
        for expected in [
            "source.grants.http: host `evil.com`",
            "source.grants.http: host `*.com`",
            "source.grants.kafka.brokers: `other:9092`",
            "source.grants.kafka.topics: `billing`",
            // A pattern needs the same pattern: `acme.*` is not `*`.
            "source.grants.kafka.topics: `*`",
            "source.grants.sql: `postgres://acme@db:5432/billing`",
            "source.grants.objects: `s3://landing/acme-other`",
        ] {
            assert!(excess.contains(expected), "{expected:?} not in:\n{excess}");
        }
        assert!(
            !excess.contains("`acme.*`"),
            "the tenant's own pattern fits:\n{excess}"
        );
        assert!(Grants::default().excess(&asking(json!({}))).is_empty());
    }

    #[test]
    fn directories_must_be_inside_the_tenants() {
        let root = tempfile::tempdir().unwrap();
        let mine = root.path().join("mine");
        let theirs = root.path().join("theirs");
        std::fs::create_dir_all(mine.join("out")).unwrap();
        std::fs::create_dir_all(&theirs).unwrap();
        let grants = Grants {
            dirs: vec![TenantDir {
                host: mine.clone(),
                write: false,
                guest: None,
            }],
            ..Grants::default()
        };
        let mine = mine.canonicalize().unwrap();
        assert!(grants.dir_allows(&mine.join("out"), false));
        assert!(!grants.dir_allows(&mine.join("out"), true), "read-only");
        assert!(!grants.dir_allows(&theirs.canonicalize().unwrap(), false));
        // A sibling whose name starts the same is not inside.
        assert!(!grants.dir_allows(&root.path().join("mine2"), false));
    }

    /// A pipeline's grants, copied into a tenant as they are, are read as the same grants;
    /// what only a pipeline gives is refused by name; stored tenants' short forms still load.
    #[test]
    fn tenant_grants_take_the_pipelines_shapes() {
        let pipeline = json!({
            "dirs": [{ "host": "/srv/acme/in", "write": true }],
            "http": { "hosts": ["api.acme.com"] },
            "sql": { "url": "postgres://acme@db:5432/acme" },
            "objects": { "url": "s3://landing/acme", "region": "eu-west-1",
                         "endpoint": "http://127.0.0.1:9000" },
            "kafka": { "brokers": "k:9092", "topics": ["acme.*"],
                       "properties": { "linger.ms": "5" } },
            "kinesis": { "region": "eu-west-1", "streams": ["acme-*"] },
        });
        let tenant: Grants = serde_json::from_value(pipeline.clone()).unwrap();
        tenant.check(&[]).unwrap();
        let back = serde_json::to_value(&tenant).unwrap();
        let mut expected = pipeline.clone();
        // A tenant may have several databases and stores: written back as lists.
        expected["sql"] = json!([pipeline["sql"]]);
        expected["objects"] = json!([pipeline["objects"]]);
        assert_eq!(back, expected);
        // So the tenant's grant holds the very pipeline it was copied from.
        let p = asking(json!({
            "http": pipeline["http"], "sql": pipeline["sql"], "kafka": pipeline["kafka"],
            "objects": {
                "url": "s3://landing/acme/2026", "region": "eu-west-1",
                "endpoint": "http://127.0.0.1:9000",
            },
        }));
        assert_eq!(tenant.excess(&p), Vec::<String>::new());
        let elsewhere = asking(json!({ "objects": {
            "url": "s3://landing/acme", "region": "us-east-1", "endpoint": "http://127.0.0.1:9000",
        }}));
        let excess = tenant.excess(&elsewhere).join("\n");
        assert!(
            excess.contains("source.grants.objects.region: `us-east-1` is not the region"),
            "{excess}"
        );

        let secrets: Grants = serde_json::from_value(json!({
            "dirs": [{ "host": "/srv/acme", "guest": "/in" }],
            "http": { "hosts": ["a.com"], "max_response": "1 MiB" },
            "sql": { "url": "postgres://a@db/a", "password": { "env": "PW" } },
            "objects": { "url": "s3://b/a", "access_key_id": { "env": "K" } },
            "kafka": { "brokers": "k:9092", "topics": ["a"], "group": "g" },
            "kinesis": { "region": "r", "streams": ["s"], "session_token": { "env": "T" } },
        }))
        .unwrap();
        let err = secrets.check(&[]).unwrap_err().to_string();
        for field in [
            "grants.dirs[0].guest",
            "grants.http.max_response",
            "grants.sql[0].password",
            "grants.objects[0].access_key_id",
            "grants.kafka.group",
            "grants.kinesis.session_token",
        ] {
            assert!(err.contains(field), "{field} not in {err}");
        }

        let stored: Grants = serde_json::from_value(json!({
            "dirs": [{ "path": "/srv/acme", "write": true }],
            "http": ["api.acme.com"],
            "sql": ["postgres://acme@db:5432/acme"],
            "objects": ["s3://landing/acme", "/srv/acme/landing",
                        { "url": "s3://minio/acme", "endpoint": "http://127.0.0.1:9000" }],
        }))
        .unwrap();
        stored.check(&[]).unwrap();
        assert_eq!(
            serde_json::to_value(&stored).unwrap(),
            json!({
                "dirs": [{ "host": "/srv/acme", "write": true }],
                "http": { "hosts": ["api.acme.com"] },
                "sql": [{ "url": "postgres://acme@db:5432/acme" }],
                "objects": [{ "url": "s3://landing/acme" }, { "dir": "/srv/acme/landing" },
                            { "url": "s3://minio/acme", "endpoint": "http://127.0.0.1:9000" }],
            })
        );
    }
}
