//! End-to-end tests: the built `weir` binary running real plugins compiled to
//! wasm32-wasip2 (built into dist/plugins/ by scripts/build.sh).

mod support;

mod delivery;
mod plugins;
mod sandbox;
