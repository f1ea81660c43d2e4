//! `weir`: run, check and inspect connector pipelines.

mod checkpoints;
mod client;
mod conformance;
mod dev;
mod new;
mod output;
mod progress;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use weir_pipeline::{PipelineFile, RunOptions, Shutdown, Status};
use weir_runtime::io::ClientPolicy;
use weir_runtime::{Runtime, RuntimeConfig};

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "Runs data connectors compiled to WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Where compiled plugins are cached [default: $WEIR_CACHE_DIR or ~/.cache/weir/components]
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    /// Log more (-v: info, -vv: debug); plugins' own lines show from info by default;
    /// RUST_LOG overrides (e.g. `RUST_LOG=weir::guest=debug`).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipelines in a pipeline file.
    Run {
        file: PathBuf,
        /// Only this pipeline of the file.
        #[arg(long)]
        pipeline: Option<String>,
        /// One run now, ignoring schedules; stream sources stop once idle.
        #[arg(long)]
        once: bool,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        #[command(flatten)]
        clients: ClientSettings,
    },
    /// Validate each pipeline's configs against its plugins' schemas and call their checks.
    Check {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        #[command(flatten)]
        clients: ClientSettings,
    },
    /// See or move where a `weir run` pipeline resumes (refused while a weir run holds the
    /// state directory).
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// List the streams each pipeline's source can read (tables, files, topics), with
    /// their schemas where the plugin knows them.
    Discover {
        file: PathBuf,
        /// Only this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        #[command(flatten)]
        clients: ClientSettings,
    },
    /// Plugin files, and plugins on a weir server (a tenant's token).
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Run a long-lived, multi-tenant host with a management API.
    Serve {
        /// Address of the management API, e.g. 127.0.0.1:7070.
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: String,
        /// Where plugins, pipelines and checkpoints are kept.
        #[arg(long)]
        data_dir: PathBuf,
        /// Push `DIR/<tenant>/<plugin>.wasm` files as new plugin versions when they change.
        #[arg(long)]
        watch: Option<PathBuf>,
        /// Plugin instances alive at once: a pipeline holds one for its source, one for its
        /// sink and one per transform worker, so this bounds the pipelines the process runs
        /// (one past it fails to instantiate, and is retried with backoff like any failure).
        #[arg(long, default_value_t = 1000)]
        max_instances: u32,
        /// The most linear memory any one instance may be granted (tenant quotas stay
        /// below it). Below the default 4GiB, each instance reserves only this much address
        /// space, so many more fit in one process, at the price of bounds checks in guest
        /// code.
        #[arg(long, default_value = "4GiB")]
        max_memory: bytesize::ByteSize,
        /// Serve the API over TLS with this certificate chain (PEM)...
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// ...and this private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Allow plain HTTP on an address other than loopback (tokens cross the network
        /// readable): only behind a TLS-terminating proxy.
        #[arg(long)]
        insecure_http: bool,
        /// Join a cluster with these settings (TOML: `brokers`, `postgres`, optionally
        /// `node`, `group`, `slots`, `session_timeout`, `heartbeat_interval`): every node
        /// with the same group shares the registry and the pipelines. See README, "Running
        /// a cluster".
        #[arg(long, value_name = "FILE")]
        cluster: Option<PathBuf>,
    },
    /// The cluster a weir server belongs to (admin token).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Tenants on a weir server (admin token).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Pipelines on a weir server (a tenant's token).
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// Run the conformance suite against a connector: spec, config, resume from every
    /// checkpoint, redelivery, dead letters, limits; exits 0 only if every check passed.
    Test {
        /// The connector's .wasm file.
        plugin: PathBuf,
        /// Its config: a JSON (or TOML, by the .toml extension) file.
        #[arg(long)]
        config: PathBuf,
        /// What it may reach, shaped like a pipeline side's `grants` (TOML, or JSON), with
        /// directories relative to this file [default: nothing]
        #[arg(long)]
        grants: Option<PathBuf>,
        /// Record values for sinks and transforms, one per line [default: 20 JSON objects,
        /// {"id":N,"name":"weir-test-N","run":MICROS}, new each run]
        #[arg(long)]
        records: Option<PathBuf>,
        /// Linear memory per instance.
        #[arg(long, default_value = "256MiB")]
        memory: bytesize::ByteSize,
        /// How long one call may run.
        #[arg(long, default_value = "30s")]
        call_timeout: humantime::Duration,
        /// How long each read of a stream source may take before it is cut short.
        #[arg(long, default_value = "10s")]
        stream_budget: humantime::Duration,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        #[command(flatten)]
        clients: ClientSettings,
    },
    /// In a project made by `weir new`: build, run its pipeline.toml from the start, show
    /// the records and dead letters as they land, and again on every change; Ctrl-C stops.
    Dev {
        /// The project [default: the current directory]
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// How often to look for changed sources.
        #[arg(long, default_value = "500ms")]
        poll: humantime::Duration,
        /// Records shown per batch.
        #[arg(long, default_value_t = 5)]
        show: usize,
        #[command(flatten)]
        clients: ClientSettings,
    },
    /// Start a connector project that builds to a .wasm with one command.
    New {
        name: String,
        #[arg(long, value_enum)]
        lang: new::Lang,
        #[arg(long, value_enum)]
        kind: new::Kind,
        /// Where to create it [default: ./NAME]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Link the project to this guest-sdk folder instead of giving it a copy of the SDK
        /// this binary carries (in weir-sdk/)
        #[arg(long, env = "WEIR_SDK")]
        sdk: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CheckpointCommand {
    /// Each pipeline's committed checkpoint and its commits.
    Show {
        file: PathBuf,
        /// Only this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Forget a pipeline's checkpoint: its next run starts from the beginning, whatever a
    /// transactional sink kept with its data.
    Reset {
        file: PathBuf,
        #[arg(long)]
        pipeline: String,
    },
    /// Move a pipeline to a checkpoint in its source's own format (as `show` prints it),
    /// refused unless a fresh instance of the source opens at it.
    Set {
        file: PathBuf,
        #[arg(long)]
        pipeline: String,
        checkpoint: String,
        #[command(flatten)]
        clients: ClientSettings,
    },
}

/// Client settings the operator allows a pipeline file beyond the pipeline-safe ones.
#[derive(clap::Args)]
struct ClientSettings {
    /// Allow this librdkafka property or PostgreSQL URL parameter (e.g. ssl.ca.location),
    /// which pipelines may not set otherwise: it names host files, loads code or redirects.
    #[arg(long = "allow-client-setting", value_name = "NAME")]
    allowed: Vec<String>,
}

impl ClientSettings {
    fn policy(self) -> ClientPolicy {
        ClientPolicy {
            allowed: self.allowed.into_iter().collect(),
        }
    }
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Print a plugin's world, metadata and config schema.
    Inspect {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Upload a plugin version; pipelines using the plugin swap to it at a checkpoint (a
    /// tenant's token).
    Push {
        file: PathBuf,
        /// The plugin's name [default: the name in its spec, e.g. file-sink]
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        server: Server,
    },
    /// The tenant's plugins and their versions (a tenant's token).
    List {
        #[command(flatten)]
        server: Server,
    },
    /// Delete a version no pipeline uses (a tenant's token).
    Delete {
        name: String,
        version: i64,
        #[command(flatten)]
        server: Server,
    },
}

/// Where the server is and who is asking.
#[derive(clap::Args)]
struct Server {
    /// The weir server's API
    #[arg(long, env = "WEIR_SERVER", default_value = "http://127.0.0.1:7070")]
    server: String,
    /// A tenant's token, or the admin token [default: $WEIR_TOKEN]
    #[arg(long)]
    token: Option<String>,
    /// Trust only this CA (PEM) for an https:// server, e.g. a self-signed one's
    #[arg(long, env = "WEIR_CA_FILE")]
    ca_file: Option<PathBuf>,
}

impl Server {
    fn client(self) -> Result<client::Client> {
        client::Client::new(&self.server, self.token, self.ca_file.as_deref())
    }
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Nodes, their health, and the slots and pipelines each runs (the admin token).
    Status {
        #[command(flatten)]
        server: Server,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant; prints its token, shown once (the admin token).
    Create {
        name: String,
        /// Quotas and grants, TOML or JSON: `[quotas]` and `[grants]` tables.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        server: Server,
    },
    /// The tenants, with their quotas and grants (the admin token).
    List {
        #[command(flatten)]
        server: Server,
    },
    /// A new token for the tenant; the old one stops working (the admin token).
    Token {
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// Delete a tenant that has no pipelines left, with its plugins (the admin token).
    Delete {
        name: String,
        #[command(flatten)]
        server: Server,
    },
}

#[derive(Subcommand)]
enum PipelineCommand {
    /// Create a pipeline from a `[[pipeline]]`-style TOML (or JSON) file; plugins by name
    /// (a tenant's token).
    Create {
        file: PathBuf,
        #[command(flatten)]
        server: Server,
    },
    /// Replace a pipeline's definition with the file's (same name); it keeps its
    /// checkpoint and resumes there (a tenant's token).
    Update {
        file: PathBuf,
        #[command(flatten)]
        server: Server,
    },
    /// The tenant's pipelines, each with its state (a tenant's token).
    List {
        #[command(flatten)]
        server: Server,
    },
    /// Where the pipeline resumes; `--set` or `--reset` moves it, while it is paused (a
    /// tenant's token).
    Checkpoint {
        name: String,
        /// Resume after this checkpoint, in the source's own format (as shown), checked by
        /// opening the source at it.
        #[arg(long, conflicts_with = "reset")]
        set: Option<String>,
        /// Start from the beginning when resumed.
        #[arg(long)]
        reset: bool,
        #[command(flatten)]
        server: Server,
    },
    /// The pipeline's recent log lines: its plugins' own, their stdout and stderr, and the
    /// host's about it (a tenant's token).
    Logs {
        name: String,
        /// Only lines after this one (the `next` of the previous page).
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        server: Server,
    },
    /// What operators did to the pipeline, oldest first: creation, updates, pauses,
    /// resumes, upgrades and checkpoint moves (a tenant's token).
    History {
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// State, last error, records in/out, checkpoint and its age (a tenant's token).
    Show {
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// Stop a pipeline where it is; it keeps its checkpoint (a tenant's token).
    Pause {
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// Start a paused pipeline again from its checkpoint (a tenant's token).
    Resume {
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// Stop a pipeline and forget it, checkpoint and all (a tenant's token).
    Delete {
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// Move to the latest (or given) plugin versions at the next checkpoint boundary (a
    /// tenant's token).
    Upgrade {
        name: String,
        #[arg(long)]
        source_version: Option<i64>,
        /// One per transform, in order; `latest` for the newest.
        #[arg(long = "transform-version", value_parser = transform_version)]
        transform_versions: Vec<Option<i64>>,
        #[arg(long)]
        sink_version: Option<i64>,
        #[command(flatten)]
        server: Server,
    },
}

fn transform_version(text: &str) -> Result<Option<i64>, String> {
    match text {
        "latest" => Ok(None),
        n => n
            .parse()
            .map(Some)
            .map_err(|_| format!("`{n}` is neither a version number nor `latest`")),
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.verbose, matches!(cli.command, Command::Serve { .. }));
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(verbose: u8, capture: bool) {
    // A plugin's own log lines (target `weir::guest`, held to each instance's budget) are
    // what an operator looks for first: shown from info up by default, where the host's
    // own are shown from warn.
    let default = match verbose {
        0 => "warn,weir::guest=info",
        1 => "info",
        _ => "debug,cranelift_codegen=info,wasmtime=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use tracing_subscriber::prelude::*;
    let shown = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    // `weir serve` keeps each pipeline's lines from info up for its tenant to read,
    // whatever the operator's own filter shows.
    let kept = capture.then(|| {
        weir_serve::logs::Capture.with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    tracing_subscriber::registry().with(shown).with(kept).init();
}

fn runtime(cache_dir: Option<PathBuf>) -> Result<Runtime> {
    let mut config = RuntimeConfig::default();
    if cache_dir.is_some() {
        config.cache_dir = cache_dir;
    }
    Runtime::new(config)
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run {
            file,
            pipeline,
            once,
            output,
            clients,
        } => {
            let mut file = PipelineFile::load_with(&file, &clients.policy())?;
            let chosen = only(&file, pipeline.as_deref())?;
            file.pipelines = chosen.into_iter().cloned().collect();
            let runtime = std::sync::Arc::new(runtime(cli.cache_dir)?);
            let stop = Shutdown::default();
            stop_on_signals(stop.clone())?;
            // Pipelines are tasks: a worker thread per core runs them all.
            let tasks = weir_runtime::task_runtime().context("cannot start the runtime")?;
            let meters: Vec<_> = file.pipelines.iter().map(|_| Default::default()).collect();
            let names: Vec<_> = file.pipelines.iter().map(|p| p.name.clone()).collect();
            let progress = progress::Progress::start(output == Output::Text, &names, &meters);
            let summaries = tasks.block_on(weir_pipeline::run_metered(
                &runtime,
                &file,
                &RunOptions {
                    once,
                    ..RunOptions::default()
                },
                &stop,
                &meters,
            ));
            progress.finish();
            let summaries = summaries?;
            output::summaries(&summaries, output)?;
            let failed = summaries.iter().any(|s| s.status == Status::Failed);
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Checkpoint(CheckpointCommand::Show {
            file,
            pipeline,
            output,
        }) => {
            let file = PipelineFile::load(&file)?;
            checkpoints::show(&file, &only(&file, pipeline.as_deref())?, output)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Checkpoint(CheckpointCommand::Reset { file, pipeline }) => {
            let file = PipelineFile::load(&file)?;
            let p = only(&file, Some(&pipeline))?[0];
            let runtime = runtime(cli.cache_dir)?;
            weir_runtime::block_on(checkpoints::set(&runtime, &file, p, None))?;
            println!("{pipeline}: reset; the next run starts from the beginning");
            Ok(ExitCode::SUCCESS)
        }
        Command::Checkpoint(CheckpointCommand::Set {
            file,
            pipeline,
            checkpoint,
            clients,
        }) => {
            let file = PipelineFile::load_with(&file, &clients.policy())?;
            let p = only(&file, Some(&pipeline))?[0];
            let runtime = runtime(cli.cache_dir)?;
            weir_runtime::block_on(checkpoints::set(&runtime, &file, p, Some(&checkpoint)))?;
            println!("{pipeline}: the next run starts after {checkpoint}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Dev {
            dir,
            poll,
            show,
            clients,
        } => {
            let runtime = std::sync::Arc::new(runtime(cli.cache_dir)?);
            let quit = Shutdown::default();
            stop_on_signals(quit.clone())?;
            let dev = dev::Dev {
                dir,
                poll: poll.into(),
                show,
            };
            dev::run(dev, runtime, &clients.policy(), quit)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Test {
            plugin,
            config,
            grants,
            records,
            memory,
            call_timeout,
            stream_budget,
            output,
            clients,
        } => {
            let runtime = runtime(cli.cache_dir)?;
            let policy = clients.policy();
            let target = conformance::target(
                &runtime,
                &plugin,
                &config,
                grants.as_deref(),
                (memory, call_timeout.into()),
                &policy,
            )?;
            let mut options = weir_conformance::Options {
                stream_budget: stream_budget.into(),
                ..Default::default()
            };
            if let Some(records) = records {
                options.sample = conformance::sample(&records)?;
            }
            let report =
                weir_runtime::block_on(weir_conformance::run(&runtime, &target, &options))?;
            output::report(&report, output)?;
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Check {
            file,
            output,
            clients,
        } => {
            let file = PipelineFile::load_with(&file, &clients.policy())?;
            let runtime = runtime(cli.cache_dir)?;
            let mut results = Vec::new();
            for pipeline in &file.pipelines {
                for side in pipeline.sides() {
                    let checked = weir_runtime::block_on(async {
                        let (mut instance, spec) =
                            weir_pipeline::prepare(&runtime, pipeline, side).await?;
                        let config = pipeline.endpoint(side).config.to_string();
                        instance.check(&config).await.with_context(|| {
                            format!("pipeline `{}` {}", pipeline.name, side.name())
                        })?;
                        anyhow::Ok(spec.name)
                    });
                    results.push(output::Checked {
                        pipeline: pipeline.name.clone(),
                        side: side.name(),
                        result: checked.map_err(|e| format!("{e:#}")),
                    });
                }
            }
            output::checks(&results, output)?;
            let failed = results.iter().any(|r| r.result.is_err());
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Discover {
            file,
            pipeline,
            output,
            clients,
        } => {
            let file = PipelineFile::load_with(&file, &clients.policy())?;
            let chosen = only(&file, pipeline.as_deref())?;
            let runtime = runtime(cli.cache_dir)?;
            let found: Vec<_> = chosen
                .iter()
                .map(|p| {
                    let found = weir_runtime::block_on(weir_pipeline::discover(&runtime, p));
                    (p.name.clone(), found)
                })
                .collect();
            output::streams(&found, output)?;
            Ok(if found.iter().any(|(_, r)| r.is_err()) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::New {
            name,
            lang,
            kind,
            dir,
            sdk,
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let new = new::New {
                lang,
                kind,
                name,
                dir,
                sdk,
                plugins: new::plugins_dir()?,
            };
            let files = new::scaffold(&new)?;
            println!("created {} in {}:", new.name, new.dir.display());
            for f in files {
                println!("  {f}");
            }
            println!(
                "build: {}/build.sh   test: {}/test.sh",
                new.dir.display(),
                new.dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Inspect { file, output }) => {
            let runtime = runtime(cli.cache_dir)?;
            output::inspect(&runtime, &file, output)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            listen,
            data_dir,
            watch,
            max_instances,
            max_memory,
            tls_cert,
            tls_key,
            insecure_http,
            cluster,
        } => {
            let admin_token = std::env::var("WEIR_ADMIN_TOKEN")
                .context("set WEIR_ADMIN_TOKEN: the token that manages tenants")?;
            let mut config = RuntimeConfig {
                max_instances,
                max_memory: max_memory.as_u64(),
                ..RuntimeConfig::default()
            };
            if cli.cache_dir.is_some() {
                config.cache_dir = cli.cache_dir;
            }
            let stop = Shutdown::default();
            stop_on_signals(stop.clone())?;
            let options = weir_serve::Options {
                listen,
                data_dir,
                admin_token,
                watch,
                runtime: config,
                tls: tls_cert
                    .zip(tls_key)
                    .map(|(cert, key)| weir_serve::TlsFiles { cert, key }),
                insecure_http,
                cluster,
            };
            weir_serve::serve(options, stop)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Push { file, name, server }) => {
            // A plugin has one name: the one its spec gives, unless the push says otherwise.
            let name = match name {
                Some(n) => n,
                None => {
                    let runtime = runtime(cli.cache_dir)?;
                    let limits = weir_runtime::Limits::default();
                    weir_runtime::block_on(weir_pipeline::inspect(&runtime, &file, limits))?
                        .spec
                        .name
                }
            };
            let wasm =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let reply = server.client()?.call(
                "POST",
                &format!("/v1/plugins/{name}"),
                Some(("application/wasm", wasm)),
            )?;
            client::print(&reply)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::List { server }) => {
            client::print(&server.client()?.call("GET", "/v1/plugins", None)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Delete {
            name,
            version,
            server,
        }) => {
            let path = format!("/v1/plugins/{name}/{version}");
            client::print(&server.client()?.call("DELETE", &path, None)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tenant(TenantCommand::Create {
            name,
            config,
            server,
        }) => {
            let mut body: serde_json::Value = match &config {
                Some(path) => {
                    let (kind, bytes) = client::read_definition(path)?;
                    let text = String::from_utf8(bytes).context("the tenant file is not UTF-8")?;
                    if kind.contains("json") {
                        serde_json::from_str(&text)?
                    } else {
                        serde_json::to_value(toml::from_str::<toml::Table>(&text)?)?
                    }
                }
                None => serde_json::json!({}),
            };
            body["name"] = name.into();
            let bytes = serde_json::to_vec(&body)?;
            let reply =
                server
                    .client()?
                    .call("POST", "/v1/tenants", Some(("application/json", bytes)))?;
            client::print(&reply)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster(ClusterCommand::Status { server }) => {
            client::print(&server.client()?.call("GET", "/v1/cluster", None)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tenant(TenantCommand::List { server }) => {
            client::print(&server.client()?.call("GET", "/v1/tenants", None)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tenant(TenantCommand::Token { name, server }) => {
            let path = format!("/v1/tenants/{name}/token");
            client::print(&server.client()?.call("POST", &path, None)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tenant(TenantCommand::Delete { name, server }) => {
            let path = format!("/v1/tenants/{name}");
            client::print(&server.client()?.call("DELETE", &path, None)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Pipeline(command) => {
            let reply = pipeline_call(command)?;
            client::print(&reply)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn pipeline_call(command: PipelineCommand) -> Result<serde_json::Value> {
    let action = |server: Server, name: &str, action: &str| {
        server
            .client()?
            .call("POST", &format!("/v1/pipelines/{name}/{action}"), None)
    };
    match command {
        PipelineCommand::Create { file, server } => {
            let body = client::read_definition(&file)?;
            server.client()?.call("POST", "/v1/pipelines", Some(body))
        }
        PipelineCommand::Update { file, server } => {
            let (kind, body) = client::read_definition(&file)?;
            let name = client::definition_name(&file, &body)?;
            server
                .client()?
                .call("PUT", &format!("/v1/pipelines/{name}"), Some((kind, body)))
        }
        PipelineCommand::List { server } => server.client()?.call("GET", "/v1/pipelines", None),
        PipelineCommand::Checkpoint {
            name,
            set,
            reset,
            server,
        } => {
            let path = format!("/v1/pipelines/{name}/checkpoint");
            let client = server.client()?;
            match (set, reset) {
                (Some(checkpoint), _) => {
                    let body =
                        serde_json::to_vec(&serde_json::json!({ "checkpoint": checkpoint }))?;
                    client.call("PUT", &path, Some(("application/json", body)))
                }
                (None, true) => client.call("DELETE", &path, None),
                (None, false) => client.call("GET", &path, None),
            }
        }
        PipelineCommand::Logs {
            name,
            after,
            limit,
            server,
        } => server.client()?.call(
            "GET",
            &format!("/v1/pipelines/{name}/logs?after={after}&limit={limit}"),
            None,
        ),
        PipelineCommand::History { name, server } => {
            server
                .client()?
                .call("GET", &format!("/v1/pipelines/{name}/history"), None)
        }
        PipelineCommand::Show { name, server } => {
            server
                .client()?
                .call("GET", &format!("/v1/pipelines/{name}"), None)
        }
        PipelineCommand::Pause { name, server } => action(server, &name, "pause"),
        PipelineCommand::Resume { name, server } => action(server, &name, "resume"),
        PipelineCommand::Delete { name, server } => {
            server
                .client()?
                .call("DELETE", &format!("/v1/pipelines/{name}"), None)
        }
        PipelineCommand::Upgrade {
            name,
            source_version,
            transform_versions,
            sink_version,
            server,
        } => {
            let body = serde_json::json!({
                "source_version": source_version,
                "transform_versions": transform_versions,
                "sink_version": sink_version,
            });
            server.client()?.call(
                "POST",
                &format!("/v1/pipelines/{name}/upgrade"),
                Some(("application/json", serde_json::to_vec(&body)?)),
            )
        }
    }
}

/// First SIGINT/SIGTERM: stop pulling, flush what is in flight, commit, exit.
/// A second one: exit now (the checkpoint still holds; the in-flight batch is redelivered).
fn stop_on_signals(stop: Shutdown) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("weir-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if stop.is_triggered() {
                    eprintln!("weir: second signal, exiting without waiting");
                    std::process::exit(128 + signal);
                }
                eprintln!(
                    "weir: stopping: finishing the batches in flight (signal again to exit now)"
                );
                stop.trigger();
            }
        })?;
    Ok(())
}

/// The file's pipelines, or only the one named (an error naming the file if it has none
/// of that name).
fn only<'a>(
    file: &'a PipelineFile,
    name: Option<&str>,
) -> anyhow::Result<Vec<&'a weir_pipeline::Pipeline>> {
    let chosen: Vec<_> = file
        .pipelines
        .iter()
        .filter(|p| name.is_none_or(|name| p.name == name))
        .collect();
    if let Some(name) = name
        && chosen.is_empty()
    {
        anyhow::bail!("no pipeline `{name}` in {}", file.path.display());
    }
    Ok(chosen)
}
