#!/usr/bin/env bash
# The README's first command: builds what is needed and runs the quickstart pipeline
# (JSON Lines + CSV files -> one JSON Lines file). Run it twice: the second run moves
# nothing, because the checkpoint held.
set -euo pipefail
source "$(dirname "$0")/env.sh"
# Builds the host and the two plugins it runs, nothing else.
"$WEIR_ROOT/scripts/build.sh" file-source file-sink >&2
exec "$WEIR_BIN" run "$WEIR_ROOT/examples/quickstart/pipeline.toml" "$@"
