//! End-to-end tests: the built `weir` binary running real plugins compiled to
//! wasm32-wasip2 (built into dist/plugins/ by scripts/build.sh).

mod fixtures;
mod support;

mod chaos;
mod cluster;
mod conformance;
mod console;
mod delivery;
mod harness;
mod http;
mod kafka;
mod kinesis;
mod languages;
mod objects;
mod plugins;
mod progress;
mod sandbox;
mod scaffold;
mod serve;
mod sql;
mod tenants;
mod transforms;
