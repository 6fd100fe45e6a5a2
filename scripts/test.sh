#!/usr/bin/env bash
# The whole test suite against real servers: installs the client libraries the
# build links, brings up PostgreSQL and MariaDB with their replicas, runs the tests.
# Needs root (apt-get, and starting the replica servers).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/testbed.sh deps
eval "$(scripts/testbed.sh up)"
cargo test --workspace --all-targets
cargo test --workspace --doc
