#!/usr/bin/env bash
# Builds the host (weir) and every plugin, and puts the plugins in dist/plugins/.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$WEIR_ROOT/scripts/setup.sh"
cd "$WEIR_ROOT"

guests=(weir-file-source weir-file-sink weir-kafka-source weir-kafka-sink weir-debezium-source weir-hostile weir-counter-stream)

# Cargo records files outside a package's own folder (wit/, tests/e2e/) by absolute path.
# After a build from another checkout into this shared target dir, it would check *that*
# checkout's files and call ours fresh: rebuild the workspace's own crates (not its deps)
# whenever the checkout changes.
stamp="$CARGO_TARGET_DIR/.weir-checkout"
if [ "$(cat "$stamp" 2>/dev/null)" != "$WEIR_ROOT" ]; then
    host=(weir-runtime weir-checkpoint weir-pipeline weir-cli weir-guest weir-guest-macro)
    cargo clean --release --quiet "${host[@]/#/-p}" "${guests[@]/#/-p}"
    cargo clean --release --quiet --target wasm32-wasip2 "${guests[@]/#/-p}" -p weir-guest
    echo "$WEIR_ROOT" > "$stamp"
fi

cargo build --release --locked
# Guests: same workspace and target dir, their own target triple.
cargo build --release --locked --target wasm32-wasip2 "${guests[@]/#/-p}"

mkdir -p "$WEIR_PLUGINS"
for guest in "${guests[@]}"; do
    name="${guest#weir-}"
    cp "$CARGO_TARGET_DIR/wasm32-wasip2/release/${guest//-/_}.wasm" "$WEIR_PLUGINS/${name//-/_}.wasm"
done

# Python guests: one component per folder, rebuilt when a source is newer than it.
for dir in "$WEIR_ROOT"/tests/plugins/py-*/; do
    name="$(basename "$dir")"
    out="$WEIR_PLUGINS/${name//-/_}.wasm"
    if [ ! -f "$out" ] || [ -n "$(find "$dir" "$WEIR_ROOT/wit" -newer "$out" -print -quit)" ]; then
        (cd "$WEIR_ROOT" && componentize-py -d wit -w sink componentize app -p "$dir" -o "$out" >/dev/null)
    fi
done
