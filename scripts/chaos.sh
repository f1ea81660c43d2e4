#!/usr/bin/env bash
# Chaos, not in CI (minutes long): kills `weir` with SIGKILL at random moments, 100 times per
# pipeline, on file → PostgreSQL, file-sink and object-sink, Kafka → Kafka and postgres-cdc →
# PostgreSQL, with new input arriving between kills; then counts every input record at the
# destination and prints the table README quotes. WEIR_CHAOS_KILLS and WEIR_CHAOS_SEED steer it.
set -euo pipefail
source "$(dirname "$0")/ready.sh"
cargo test --release --locked -p weir-cli --test e2e chaos:: -- --ignored --nocapture --test-threads 1
