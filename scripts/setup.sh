#!/usr/bin/env bash
# Installs what a fresh machine lacks to build weir and its plugins. Idempotent.
# `setup.sh --core`: only what the host and the Rust plugins need (the quickstart's share);
# with no argument, also the Python and JavaScript toolchains and the servers the tests run.
set -euo pipefail
source "$(dirname "$0")/env.sh"
core_only=false
[ "${1:-}" = "--core" ] && core_only=true

if ! command -v cargo >/dev/null; then
    echo "setup: cargo is missing; install Rust with rustup first" >&2
    exit 1
fi
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi
# Debian packages: a C compiler (bundled SQLite), cmake (bundled librdkafka) and curl's
# headers, which librdkafka 2.12's cmake build includes even with curl off.
missing=()
command -v cc >/dev/null || missing+=(build-essential)
command -v cmake >/dev/null || missing+=(cmake)
[ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -e /usr/include/curl/curl.h ] || missing+=(libcurl4-openssl-dev)
# objcopy: build.sh splits the shipped binary's debug info into a file beside it.
command -v objcopy >/dev/null || missing+=(binutils)
if ! $core_only; then
    command -v node >/dev/null || missing+=(nodejs npm)
    # The SQL tests start throwaway PostgreSQL clusters from the server binaries.
    [ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
    [ -e /usr/lib/postgresql/15/lib/wal2json.so ] || missing+=(postgresql-15-wal2json)
    # The tests' own tools: `script` (a pty for the progress test), and curl, openssl and
    # python3 (the README walkthrough the tests run).
    command -v script >/dev/null || missing+=(bsdutils)
    command -v curl >/dev/null || missing+=(curl)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v python3 >/dev/null || missing+=(python3 python3-pip)
    # The console's tests drive a real headless browser.
    command -v chromium >/dev/null || missing+=(chromium)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi
$core_only && exit 0

# Python guests are built with componentize-py (it embeds CPython; no other download).
if ! command -v componentize-py >/dev/null || [ "$(componentize-py --version 2>/dev/null)" != "componentize-py 0.25.1" ]; then
    echo "setup: installing componentize-py 0.25.1"
    python3 -m pip install -q componentize-py==0.25.1
fi

# JavaScript guests are built with componentize-js and esbuild, pinned by the SDK's lock file.
js="$WEIR_ROOT/guest-sdk/js"
if [ ! -f "$js/node_modules/.package-lock.json" ] || [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]; then
    echo "setup: installing the JavaScript SDK's tools (npm ci)"
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The console's tests drive Chromium with puppeteer-core, pinned by their lock file.
console="$WEIR_ROOT/tests/console"
if [ ! -f "$console/node_modules/.package-lock.json" ] || [ "$console/package-lock.json" -nt "$console/node_modules/.package-lock.json" ]; then
    echo "setup: installing the console tests' browser driver (npm ci)"
    (cd "$console" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

# The object storage tests run an S3-compatible server (moto's) on loopback.
if ! command -v moto_server >/dev/null; then
    echo "setup: installing moto[server]"
    python3 -m pip install -q 'moto[server]==5.2.1'
fi

# The Kinesis tests run kinesis-mock (compiled to JavaScript: the npm package kinesis-local)
# on loopback, under scripts/kinesis-loopback.js.
kinesis="$HOME/.cache/weir/tools/kinesis-local-0.6.2"
if [ ! -f "$kinesis/node_modules/kinesis-local/main.js" ]; then
    echo "setup: installing kinesis-local 0.6.2"
    mkdir -p "$kinesis"
    (cd "$kinesis" && npm install --no-audit --no-fund --loglevel=error --no-save kinesis-local@0.6.2)
fi
