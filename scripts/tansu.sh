#!/usr/bin/env bash
# Installs the Kafka-protocol broker the tests run (tansu, with its SQLite storage) into a
# cache keyed by version and features, so it is built once per machine. Prints its path.
set -euo pipefail
version=0.6.0
features=libsql
root="$HOME/.cache/weir/tools/tansu-$version-$features"
if [ ! -x "$root/bin/tansu" ]; then
    echo "tansu: building $version ($features) once, into $root (~7 min)" >&2
    cargo install "tansu@$version" --features "$features" --locked --root "$root" >&2
fi
echo "$root/bin/tansu"
