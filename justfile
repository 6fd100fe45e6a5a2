# Mirrors .ci/run.

# Bring up the test servers (PostgreSQL + two replicas, MariaDB + replica pair).
testbed:
    scripts/testbed.sh up

# The whole suite, as the README gives it.
test:
    scripts/test.sh

lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings

ci:
    bash .ci/run

quickstart:
    cargo run -p quickstart

# A soak run, not part of `test`: a minute per backend (DBI_SOAK_SECS) of mixed
# load while connections are killed at random on the server.
soak:
    eval "$(scripts/testbed.sh up)" && cargo test -p dbinstance --all-features --test server_restart -- --ignored --nocapture
