#!/usr/bin/env bash
# Runs every benchmark, one after another, and writes what they print to
# docs/benchmarks/latest.txt, headed by the date and the machine. README's Performance
# section quotes these tables. The machine should be otherwise idle: figures are medians
# and ratios within one run, but a busy neighbour still moves them.
#
# WEIR_BENCH_QUICK=1 runs each with small counts, to check that all of them run (its
# figures mean nothing; it writes docs/benchmarks/quick.txt instead).
set -euo pipefail
source "$(dirname "$0")/ready.sh"
out="docs/benchmarks/latest.txt"
if [ "${WEIR_BENCH_QUICK:-}" = 1 ]; then
    export WEIR_BENCH_RECORDS=20000 WEIR_BENCH_ROWS=20000
    out="docs/benchmarks/quick.txt"
fi
mkdir -p "$(dirname "$out")"
# The PostgreSQL bench also times dlt, a Python peer: installed here, in a virtualenv of
# its own (only benches need it, and its dependencies must not move the system's).
dlt_env="$HOME/.cache/weir/tools/dlt-1.31.0"
if ! "$dlt_env/bin/python3" -c "import dlt, sqlalchemy, psycopg2" 2>/dev/null; then
    python3 -m venv "$dlt_env"
    "$dlt_env/bin/python3" -m pip install -q "dlt[filesystem]==1.31.0" sqlalchemy psycopg2-binary
fi
{
    echo "weir benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)"
    echo "machine: $(uname -srm); $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); $(free -g | awk '/Mem:/ {print $2}') GiB"
    for bench in throughput transforms kafka languages postgres cdc; do
        echo
        echo "== cargo bench -p weir-pipeline --bench $bench"
        WEIR_DLT_PYTHON="$dlt_env/bin/python3" cargo bench --locked --quiet -p weir-pipeline --bench "$bench" 2>/dev/null
    done
    echo
    echo "== cargo bench -p weir-cli --bench serve"
    cargo bench --locked --quiet -p weir-cli --bench serve 2>/dev/null
    echo
    echo "== cargo bench -p weir-cli --bench cluster"
    cargo bench --locked --quiet -p weir-cli --bench cluster 2>/dev/null
    echo
    echo "== cargo bench -p weir-cli --bench kinesis"
    cargo bench --locked --quiet -p weir-cli --bench kinesis 2>/dev/null
} | tee "$out"
