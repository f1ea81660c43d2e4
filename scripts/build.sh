#!/usr/bin/env bash
# Builds the host (weir, shipped as dist/bin/weir) and every plugin, and puts the plugins in
# dist/plugins/. `build.sh file-source file-sink` builds the host and only the Rust plugins
# named (what the quickstart runs), with only the set-up those need.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$WEIR_ROOT"

all_guests=(weir-file-source weir-file-sink weir-kafka-source weir-kafka-sink weir-debezium-source weir-postgres-source weir-postgres-sink weir-postgres-cdc weir-object-source weir-object-sink weir-jq weir-mask weir-kinesis-source weir-kinesis-sink weir-hostile weir-counter-stream weir-transform weir-rogue-transform weir-broken-source weir-broken-sink)
if [ $# -gt 0 ]; then
    "$WEIR_ROOT/scripts/setup.sh" --core
    guests=("${@/#/weir-}")
else
    "$WEIR_ROOT/scripts/setup.sh"
    guests=("${all_guests[@]}")
fi

# Cargo records files outside a package's own folder (wit/, tests/e2e/) by absolute path.
# After a build from another checkout into this shared target dir, it would check *that*
# checkout's files and call ours fresh: rebuild the workspace's own crates (not its deps)
# whenever the checkout changes.
stamp="$CARGO_TARGET_DIR/.weir-checkout"
if [ "$(cat "$stamp" 2>/dev/null)" != "$WEIR_ROOT" ]; then
    host=(weir-runtime weir-checkpoint weir-pipeline weir-cli weir-guest weir-guest-macro)
    cargo clean --release --quiet "${host[@]/#/-p}" "${all_guests[@]/#/-p}"
    cargo clean --profile guest --quiet --target wasm32-wasip2 "${all_guests[@]/#/-p}" -p weir-guest
    echo "$WEIR_ROOT" > "$stamp"
fi

cargo build --release --locked
"$WEIR_ROOT/scripts/ship-bin.sh" "$CARGO_TARGET_DIR/release/weir" "$WEIR_ROOT/dist/bin"
mkdir -p "$WEIR_PLUGINS"
if [ $# -eq 0 ]; then
    # The test counter once more, marking its records: the new code a hot swap test sees run.
    # Built first: cargo leaves the last build of a crate at its output path.
    cargo build --profile guest --locked --target wasm32-wasip2 -p weir-counter-stream --features marked
    cp "$CARGO_TARGET_DIR/wasm32-wasip2/guest/weir_counter_stream.wasm" "$WEIR_PLUGINS/counter_stream_marked.wasm"
    cargo build --profile guest --locked --target wasm32-wasip2 -p weir-rogue-transform --features v2
    cp "$CARGO_TARGET_DIR/wasm32-wasip2/guest/weir_rogue_transform.wasm" "$WEIR_PLUGINS/rogue_transform_v2.wasm"
    cargo build --profile guest --locked --target wasm32-wasip2 -p weir-broken-source --features bad-schema
    cp "$CARGO_TARGET_DIR/wasm32-wasip2/guest/weir_broken_source.wasm" "$WEIR_PLUGINS/broken_source_bad_schema.wasm"
fi
# Guests: same workspace and target dir, their own target triple and profile (Cargo.toml).
# One at a time: built together, cargo would give each the union of their dependencies'
# features (file-source's `preserve_order` made every guest's serde_json maps slower).
for guest in "${guests[@]}"; do
    cargo build --profile guest --locked --target wasm32-wasip2 -p "$guest"
    name="${guest#weir-}"
    cp "$CARGO_TARGET_DIR/wasm32-wasip2/guest/${guest//-/_}.wasm" "$WEIR_PLUGINS/${name//-/_}.wasm"
done
[ $# -gt 0 ] && exit 0

# Guests in other languages (Python, JavaScript): each folder's build.sh builds it with its
# SDK, and skips the build when nothing changed.
for build in "$WEIR_ROOT"/plugins/*/build.sh "$WEIR_ROOT"/tests/plugins/*/build.sh; do
    name="$(basename "$(dirname "$build")")"
    "$build" "$WEIR_PLUGINS/${name//-/_}.wasm"
done
