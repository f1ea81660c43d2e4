//! `weir`: run, check and inspect connector pipelines.

mod new;
mod output;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use weir_pipeline::{PipelineFile, RunOptions, Shutdown, Side, Status};
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
    /// Log more (-v: info, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipelines in a pipeline file.
    Run {
        file: PathBuf,
        /// One run now, ignoring schedules; stream sources stop once idle.
        #[arg(long)]
        once: bool,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Validate each pipeline's configs against its plugins' schemas and call their checks.
    Check {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Plugin files.
    #[command(subcommand)]
    Plugin(PluginCommand),
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
        /// weir's guest-sdk folder [default: $WEIR_SDK, or the one weir was built from]
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Print a plugin's world, metadata and config schema.
    Inspect {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.verbose);
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug,cranelift_codegen=info,wasmtime=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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
        Command::Run { file, once, output } => {
            let file = PipelineFile::load(&file)?;
            let runtime = runtime(cli.cache_dir)?;
            let stop = Shutdown::default();
            stop_on_signals(stop.clone())?;
            let summaries = weir_pipeline::run(&runtime, &file, &RunOptions { once }, &stop)?;
            output::summaries(&summaries, output)?;
            let failed = summaries.iter().any(|s| s.status == Status::Failed);
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Check { file, output } => {
            let file = PipelineFile::load(&file)?;
            let runtime = runtime(cli.cache_dir)?;
            let mut results = Vec::new();
            for pipeline in &file.pipelines {
                for side in [Side::Source, Side::Sink] {
                    let checked = weir_pipeline::prepare(&runtime, pipeline, side).and_then(
                        |(mut instance, spec)| {
                            let config = side_config(pipeline, side);
                            instance.check(&config).with_context(|| {
                                format!("pipeline `{}` {}", pipeline.name, side.name())
                            })?;
                            Ok(spec.name)
                        },
                    );
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
    }
}

fn side_config(p: &weir_pipeline::Pipeline, side: Side) -> String {
    match side {
        Side::Source => p.source.config.to_string(),
        Side::Sink => p.sink.config.to_string(),
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
