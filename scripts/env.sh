# Sourced by the other scripts: one target dir for host and guests, kept across clones,
# so CI and reruns reuse the wasmtime build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
export WEIR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The shipped binary (build.sh strips the cargo build's debug info into weir.debug beside it).
export WEIR_BIN="$WEIR_ROOT/dist/bin/weir"
export WEIR_PLUGINS="$WEIR_ROOT/dist/plugins"
