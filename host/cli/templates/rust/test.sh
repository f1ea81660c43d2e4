#!/usr/bin/env bash
# Tests the connector's logic natively.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --quiet
{{conformance}}
