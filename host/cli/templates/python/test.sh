#!/usr/bin/env bash
# Tests the connector's logic in plain CPython: the SDK works outside a component too.
set -euo pipefail
cd "$(dirname "$0")"
PYTHONPATH="{{sdk}}" python3 -m unittest -q test_app
{{conformance}}
