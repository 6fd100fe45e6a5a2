#!/usr/bin/env bash
# The whole test suite against real servers: installs the client libraries the
# build links, brings up PostgreSQL and MariaDB with their replicas, runs the tests.
# Needs root (apt-get, and starting the replica servers).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/testbed.sh deps
eval "$(scripts/testbed.sh up)"
# Every backend: the server backends are opt-in features, so turn them all on.
cargo test --workspace --all-features --all-targets
cargo test --workspace --all-features --doc
