#!/usr/bin/env bash
# testbed.sh — bring up / stop / start / report the database servers used by
# the integration tests, on a Debian 12 machine where we run as root (no systemd).
#
#   system PostgreSQL    127.0.0.1:5432  (Debian cluster <ver>/main)
#   PostgreSQL replica   127.0.0.1:5433  (streaming standby of 5432, ours)
#   PostgreSQL replica 2 127.0.0.1:5434  (another one, its own slot: reads spread over two)
#   system MariaDB       127.0.0.1:3306
#   MariaDB primary      127.0.0.1:3307  (dedicated: the system server has no binlog)
#   MariaDB replica      127.0.0.1:3308  (replicates 3307 with GTID)
#   PostgreSQL to kill   127.0.0.1:5435  (a cluster of its own, for the restart tests;
#                                         it allows prepared transactions)
#   PostgreSQL with TLS  127.0.0.1:5436  (TLS only; also on 127.0.0.2, a name its certificate lacks)
#   MariaDB with TLS     127.0.0.1:3309  (TLS only; also on 127.0.0.2)
#   The TLS servers' certificates come from a CA of the test bed's own, made with
#   openssl; the client certificate is for the user `dbi_cert`, which both servers
#   accept only with it.
#   PgBouncer            127.0.0.1:6433  (ours, transaction pooling: database `test` is
#                                         5432's, `test_replica` is 5433's, both with 4
#                                         server connections; `bench` is 5432's with 16;
#                                         `web` and `web_replica` put schema dbi_web first
#                                         on the search_path, for the web scenario)
#
# Usage: testbed.sh [up|env|status|down|reset|deps]
#        testbed.sh {stop,start}-{replica,primary} {pg|mysql}
#        testbed.sh {kill,restart}-victim {pg|mysql}   # SIGKILL / start again the
#          server the restart tests may kill: the 5435 cluster, the 3307 primary
# `up` and `env` print only `export NAME=value` lines on stdout (progress goes to
# stderr), so callers can do: eval "$(scripts/testbed.sh up)"
set -euo pipefail

TIMEOUT=${TESTBED_TIMEOUT:-60}           # max seconds for any single wait
PG_VER=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1 || true)
PG_BIN=/usr/lib/postgresql/$PG_VER/bin
PG_REPLICAS=(1 2)                        # replica N listens on 5432+N
PG_REPLICA_BASE=/var/lib/postgresql/dbinstance-replica   # replica 1's; replica 2's ends in 2
PG_SLOT=dbi_testbed_replica              # slot keeps WAL while the replica is stopped
MY_BASE=/var/lib/dbinstance-mariadb      # holds primary/ and replica/
MY_DONE=$MY_BASE/.complete               # written once the pair replicated a row
PG_VICTIM=/var/lib/postgresql/dbinstance-victim   # the cluster on 5435: data/, run/, server.log
PG_VICTIM_PORT=5435
TLS_BASE=/var/lib/dbinstance-tls         # certs/, pg/ (the 5436 cluster), mariadb/ (3309)
TLS_CERTS=$TLS_BASE/certs
TLS_DONE=$TLS_CERTS/.complete            # written once every certificate is there
PG_TLS=$TLS_BASE/pg
PG_TLS_PORT=5436
MY_TLS=$TLS_BASE/mariadb
MY_TLS_PORT=3309
TLS_PASSWORD=dbi-tls-pw                  # dbi_tls's password on both TLS servers
PGB_DIR=/var/lib/postgresql/dbinstance-pgbouncer   # pgbouncer.ini, userlist.txt, pid, log
PGB_PORT=6433                            # not 6432: the Debian package's own service may take that

log() { echo "testbed: $*" >&2; }
die() { echo "testbed: ERROR: $*" >&2; exit 1; }

# wait_for DESC CMD...: poll CMD until it succeeds, at most $TIMEOUT seconds.
wait_for() {
  local desc=$1 deadline=$((SECONDS + TIMEOUT)); shift
  until "$@"; do
    ((SECONDS < deadline)) || { echo "testbed: ERROR: timed out after ${TIMEOUT}s waiting for $desc" >&2; return 1; }
    sleep 0.2
  done
}

# pid_matches PIDFILE MARKER: the pid in PIDFILE is alive and its command line
# contains MARKER (guards against stale pid files whose pid was reused).
pid_matches() {
  local pid; pid=$(head -n1 "$1" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$2"
}

pg_q() { PGCONNECT_TIMEOUT=3 psql -X -q -At -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2" 2>/dev/null; }
my_q() { mariadb --no-defaults --protocol=tcp --connect-timeout=3 -h127.0.0.1 -P"$1" -uroot -N -B -e "$2" 2>/dev/null; }
as_pg() { runuser -u postgres -- "$@"; }
nonce() { echo "$$-$(date +%s%N)"; }

# ---------------------------------------------------------------- PostgreSQL
# Replica N: its port, base dir (data/, run/ for the unix socket, replica.log) and
# slot. Replica 1 keeps the unsuffixed names it had before there were two.
pg_rport() { echo $((5432 + $1)); }
pg_rsuffix() { [[ $1 == 1 ]] || echo "$1"; }
pg_rdir() { echo "$PG_REPLICA_BASE$(pg_rsuffix "$1")"; }
pg_rslot() { echo "$PG_SLOT$(pg_rsuffix "$1")"; }

pg_primary_ok() { [[ "$(pg_q 5432 'select 1')" == 1 ]]; }

pg_primary_start() {
  [[ -n $PG_VER ]] || die "no PostgreSQL cluster under /etc/postgresql"
  pg_primary_ok && return 0
  log "starting system PostgreSQL $PG_VER/main"
  pg_ctlcluster --skip-systemctl-redirect "$PG_VER" main start </dev/null >&2 || true
  wait_for "PostgreSQL on 5432" pg_primary_ok || die "see /var/log/postgresql/postgresql-$PG_VER-main.log"
}

pg_primary_stop() {
  pg_ctlcluster "$PG_VER" main status >/dev/null 2>&1 || return 0
  log "stopping system PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$PG_VER" main stop -m fast </dev/null >&2
}

# One-time primary setup: allow replication connections, `test` db, probe table, slots.
pg_primary_prepare() {
  local hba=/etc/postgresql/$PG_VER/main/pg_hba.conf n slot
  if ! grep -qE '^\s*host\s+replication\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    log "allowing replication connections in $hba"
    echo 'host replication all 127.0.0.1/32 trust' >>"$hba"
    pg_q 5432 'select pg_reload_conf()' >/dev/null || die "reloading PostgreSQL failed"
  fi
  [[ "$(pg_q 5432 "select 1 from pg_database where datname='test'")" == 1 ]] ||
    pg_q 5432 'create database test' >/dev/null || die "creating database test failed"
  pg_q 5432 'create table if not exists testbed_probe(id int primary key, nonce text)' >/dev/null ||
    die "preparing the PostgreSQL primary (probe table) failed"
  for n in "${PG_REPLICAS[@]}"; do
    slot=$(pg_rslot "$n")
    pg_q 5432 "select pg_create_physical_replication_slot('$slot', true)
               where not exists (select 1 from pg_replication_slots where slot_name='$slot')" >/dev/null ||
      die "preparing the PostgreSQL primary (slot $slot) failed"
  done
}

# A usable dir for replica N: basebackup finished (-R writes standby.signal at the
# end) and our postgresql.conf (written last) is there, for the current PG version.
pg_replica_valid() {
  local data; data=$(pg_rdir "$1")/data
  [[ -f $data/standby.signal && -f $data/postgresql.conf &&
     "$(cat "$data/PG_VERSION" 2>/dev/null)" == "$PG_VER" ]]
}
pg_replica_running() { local data; data=$(pg_rdir "$1")/data; pid_matches "$data/postmaster.pid" "$data"; }

pg_replica_create() {
  local n=$1 base port slot; base=$(pg_rdir "$n"); port=$(pg_rport "$n"); slot=$(pg_rslot "$n")
  local data=$base/data run=$base/run
  log "creating PostgreSQL replica $n in $data (pg_basebackup)"
  pg_replica_stop "$n"
  rm -rf "$base"
  mkdir -p "$data" "$run"
  chown -R postgres:postgres "$base"
  chmod 700 "$data"
  # Fresh slot, so WAL retained for an older replica incarnation is released.
  pg_q 5432 "select pg_drop_replication_slot('$slot') from pg_replication_slots
             where slot_name='$slot' and not active" >/dev/null || true
  pg_primary_prepare
  as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p 5432 -U postgres -D "$data" \
    -X stream -S "$slot" -R --checkpoint=fast </dev/null >&2 || die "pg_basebackup failed"
  # Debian keeps config in /etc, so the copy has none. A hot standby needs
  # max_* >= the primary's; copy those plus locale/timezone so results match.
  local inherited
  inherited=$(pg_q 5432 "select string_agg(format('%s = %L', name, setting), E'\n') from pg_settings
    where lower(name) in ('max_connections','max_worker_processes','max_wal_senders','max_prepared_transactions',
                   'max_locks_per_transaction','timezone','datestyle','lc_messages','lc_monetary',
                   'lc_numeric','lc_time','default_text_search_config')")
  cat >"$data/pg_hba.conf" <<EOF
local all all trust
host all all 127.0.0.1/32 trust
local replication all trust
host replication all 127.0.0.1/32 trust
EOF
  cat >"$data/postgresql.conf.tmp" <<EOF
# written by scripts/testbed.sh
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$run'
hot_standby = on
hot_standby_feedback = on
wal_retrieve_retry_interval = '1s'   # reconnect quickly after the primary restarts
shared_buffers = 32MB
cluster_name = 'dbi-replica$(pg_rsuffix "$n")'
$inherited
EOF
  chown postgres:postgres "$data"/pg_hba.conf "$data"/postgresql.conf.tmp
  mv "$data/postgresql.conf.tmp" "$data/postgresql.conf"
}

pg_replica_start() {
  local n=$1 base port; base=$(pg_rdir "$n"); port=$(pg_rport "$n")
  pg_replica_running "$n" && return 0
  log "starting PostgreSQL replica $n on $port"
  rm -f "$base/data/postmaster.pid" "$base/run"/.s.PGSQL."$port"*   # stale leftovers
  as_pg "$PG_BIN/pg_ctl" -D "$base/data" -l "$base/replica.log" -w -t "$TIMEOUT" start </dev/null >&2 ||
    die "PostgreSQL replica $n did not start; see $base/replica.log"
}

pg_replica_stop() {
  if pg_replica_running "$1"; then
    log "stopping PostgreSQL replica $1"
    as_pg "$PG_BIN/pg_ctl" -D "$(pg_rdir "$1")/data" -m fast -w -t "$TIMEOUT" stop </dev/null >&2
  fi
}

pg_streaming() {
  [[ "$(pg_q "$(pg_rport "$1")" 'select pg_is_in_recovery()')" == t ]] &&
  [[ "$(pg_q 5432 "select r.state from pg_stat_replication r join pg_replication_slots s
                    on s.active_pid = r.pid where s.slot_name='$(pg_rslot "$1")'")" == streaming ]]
}
# pg_probe_seen N NONCE
pg_probe_seen() { [[ "$(pg_q "$(pg_rport "$1")" 'select nonce from testbed_probe where id=1')" == "$2" ]]; }

# Wait until replica N streams and has replayed a freshly written row.
pg_wait_replication() {
  local n=$1 logfile; logfile=$(pg_rdir "$1")/replica.log
  wait_for "PostgreSQL replica $n streaming" pg_streaming "$n" || die "see $logfile"
  local nc; nc=$(nonce)
  pg_q 5432 "insert into testbed_probe values (1, '$nc') on conflict (id) do update set nonce = excluded.nonce" >/dev/null ||
    die "writing the probe row on 5432 failed"
  wait_for "row replicated to PostgreSQL replica $n" pg_probe_seen "$n" "$nc" || die "see $logfile"
}

# pg_replica_up N: the primary, then replica N, created when missing, streaming.
pg_replica_up() {
  pg_primary_start
  pg_primary_prepare
  pg_replica_valid "$1" || pg_replica_create "$1"
  pg_replica_start "$1"
  pg_wait_replication "$1"
}

# A cluster of its own that tests may kill: the system server is never stopped.
pg_victim_running() { pid_matches "$PG_VICTIM/data/postmaster.pid" "$PG_VICTIM/data"; }
pg_victim_ok() { [[ "$(pg_q $PG_VICTIM_PORT 'select 1')" == 1 ]]; }

pg_victim_create() {
  log "creating the PostgreSQL cluster to kill in $PG_VICTIM"
  rm -rf "$PG_VICTIM"
  mkdir -p "$PG_VICTIM/data" "$PG_VICTIM/run"
  chown -R postgres:postgres "$PG_VICTIM"
  as_pg "$PG_BIN/initdb" -D "$PG_VICTIM/data" -U postgres -A trust --no-sync >"$PG_VICTIM/initdb.log" 2>&1 ||
    die "initdb failed; see $PG_VICTIM/initdb.log"
  cat >>"$PG_VICTIM/data/postgresql.conf" <<EOF
# written by scripts/testbed.sh
port = $PG_VICTIM_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_VICTIM/run'
shared_buffers = 32MB
max_connections = 100
EOF
}

pg_victim_start() {
  pg_victim_running && { wait_for "PostgreSQL on $PG_VICTIM_PORT" pg_victim_ok; return; }
  log "starting the PostgreSQL cluster to kill on $PG_VICTIM_PORT"
  rm -f "$PG_VICTIM/run"/.s.PGSQL."$PG_VICTIM_PORT"*
  # pg_ctl removes a stale postmaster.pid itself after a kill.
  # Prepared transactions on (the unit-of-work tests), given at start so that a
  # cluster made before this setting existed gets it too.
  as_pg "$PG_BIN/pg_ctl" -D "$PG_VICTIM/data" -l "$PG_VICTIM/server.log" -w -t "$TIMEOUT" \
    -o "-c max_prepared_transactions=8" start </dev/null >&2 ||
    die "the PostgreSQL cluster on $PG_VICTIM_PORT did not start; see $PG_VICTIM/server.log"
  wait_for "PostgreSQL on $PG_VICTIM_PORT" pg_victim_ok || die "see $PG_VICTIM/server.log"
}

pg_victim_stop() {
  if pg_victim_running; then
    log "stopping the PostgreSQL cluster on $PG_VICTIM_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_VICTIM/data" -m fast -w -t "$TIMEOUT" stop </dev/null >&2
  fi
}

pg_victim_up() {
  [[ "$(cat "$PG_VICTIM/data/PG_VERSION" 2>/dev/null)" == "$PG_VER" ]] || pg_victim_create
  pg_victim_start
  [[ "$(pg_q $PG_VICTIM_PORT "select 1 from pg_database where datname='test'")" == 1 ]] ||
    pg_q $PG_VICTIM_PORT 'create database test' >/dev/null || die "creating database test on $PG_VICTIM_PORT failed"
}

# kill_victim pg|mysql: SIGKILL, as a crash would; the kernel resets every connection.
kill_victim() {
  local pid
  if [[ $1 == pg ]]; then
    pg_victim_running || return 0
    pid=$(head -n1 "$PG_VICTIM/data/postmaster.pid")
  else
    my_running primary || return 0
    pid=$(head -n1 "$MY_BASE/primary/mariadbd.pid")
  fi
  log "killing the $1 server (pid $pid)"
  kill -KILL "$pid"
  wait_for "the killed $1 server to be gone" eval '! kill -0 '"$pid"' 2>/dev/null'
  # The postmaster's children leave on their own; wait until none answers.
  if [[ $1 == pg ]]; then wait_for "PostgreSQL on $PG_VICTIM_PORT to stop answering" eval '! pg_victim_ok'; fi
}

restart_victim() {
  if [[ $1 == pg ]]; then pg_victim_start
  else my_start primary; my_running replica && my_wait_replication; fi
  true
}

# ------------------------------------------------------------------ PgBouncer
# Our own instance with our own config; the package's service, if any, is left
# alone. Few server connections per database, so that tests with more clients
# than that really share them. No ignore_startup_parameters: a client that sends
# `options` is refused, as by a default install.
pg_q_db() { PGCONNECT_TIMEOUT=3 psql -X -q -At -h 127.0.0.1 -p "$1" -U postgres -d "$2" -c "$3" 2>/dev/null; }
pgb_running() { pid_matches "$PGB_DIR/pgbouncer.pid" pgbouncer; }
pgb_ok() { [[ "$(pg_q_db $PGB_PORT test 'select 1')" == 1 && "$(pg_q_db $PGB_PORT test_replica 'select 1')" == 1 ]]; }

# Writes the config; a running PgBouncer whose config changed reloads it (SIGHUP).
pgb_config() {
  mkdir -p "$PGB_DIR"
  echo '"postgres" ""' >"$PGB_DIR/userlist.txt"
  cat >"$PGB_DIR/pgbouncer.ini.new" <<EOF
; written by scripts/testbed.sh
[databases]
test = host=127.0.0.1 port=5432 dbname=test
test_replica = host=127.0.0.1 port=$(pg_rport 1) dbname=test
bench = host=127.0.0.1 port=5432 dbname=test pool_size=16
web = host=127.0.0.1 port=5432 dbname=test connect_query='SET search_path TO dbi_web'
web_replica = host=127.0.0.1 port=$(pg_rport 1) dbname=test connect_query='SET search_path TO dbi_web'
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $PGB_DIR/userlist.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 1000
logfile = $PGB_DIR/pgbouncer.log
pidfile = $PGB_DIR/pgbouncer.pid
EOF
  chown -R postgres:postgres "$PGB_DIR"
  if cmp -s "$PGB_DIR/pgbouncer.ini.new" "$PGB_DIR/pgbouncer.ini"; then
    rm -f "$PGB_DIR/pgbouncer.ini.new"
    return
  fi
  mv "$PGB_DIR/pgbouncer.ini.new" "$PGB_DIR/pgbouncer.ini"
  if pgb_running; then
    log "reloading PgBouncer's changed config"
    kill -HUP "$(head -n1 "$PGB_DIR/pgbouncer.pid")"
  fi
}

pgb_up() {
  command -v pgbouncer >/dev/null || die "pgbouncer is not installed; run: scripts/testbed.sh deps"
  pg_primary_start
  pg_primary_prepare
  pgb_config
  if ! pgb_running; then
    log "starting PgBouncer on $PGB_PORT"
    rm -f "$PGB_DIR/pgbouncer.pid"
    as_pg pgbouncer -d -q "$PGB_DIR/pgbouncer.ini" </dev/null >&2 || die "PgBouncer did not start; see $PGB_DIR/pgbouncer.log"
  fi
  wait_for "PgBouncer on $PGB_PORT" pgb_ok || die "see $PGB_DIR/pgbouncer.log"
}

pgb_stop() {
  if pgb_running; then
    log "stopping PgBouncer"
    kill -TERM "$(head -n1 "$PGB_DIR/pgbouncer.pid")"
    wait_for "PgBouncer to stop" eval '! pgb_running' || die "PgBouncer did not stop"
  fi
}

# ------------------------------------------------------------------- MariaDB
sys_my_start() {
  if ! my_q 3306 'select 1' >/dev/null; then
    log "starting system MariaDB"
    local pidfile
    pidfile=$(/usr/sbin/mariadbd --print-defaults | tr ' ' '\n' | sed -n 's/^--pid-file=//p' | tail -n1)
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    # --pidfile makes the match specific to the system server: our pair runs the same binary.
    start-stop-daemon --start --oknodo --background --pidfile "${pidfile:-/run/mysqld/mysqld.pid}" \
      --exec /usr/sbin/mariadbd </dev/null >/dev/null 2>&1 || true
    wait_for "MariaDB on 3306" my_q 3306 'select 1' || die "system MariaDB did not start"
  fi
  my_q 3306 'create database if not exists test' >/dev/null || die "creating database test on 3306 failed"
}

my_port() { case $1 in primary) echo 3307 ;; replica) echo 3308 ;; esac; }
my_running() { pid_matches "$MY_BASE/$1/mariadbd.pid" "--datadir=$MY_BASE/$1/data"; }
my_ready() { kill -0 "$2" 2>/dev/null || die "mariadbd ($1) exited; see $MY_BASE/$1/error.log"
             my_q "$(my_port "$1")" 'select 1' >/dev/null; }

my_start() {
  local role=$1 dir=$MY_BASE/$1 port; port=$(my_port "$1")
  my_running "$role" && return 0
  log "starting MariaDB $role on $port"
  rm -f "$dir/mariadbd.pid" "$dir/mariadbd.sock"
  local -a args=(--no-defaults --user=mysql --datadir="$dir/data" --port="$port"
    --bind-address=127.0.0.1 --socket="$dir/mariadbd.sock" --pid-file="$dir/mariadbd.pid"
    --log-error="$dir/error.log" --skip-name-resolve --performance-schema=OFF
    --innodb-buffer-pool-size=32M --innodb-log-file-size=16M --innodb-flush-log-at-trx-commit=2
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci)
  # Explicit log names: the defaults derive from the hostname.
  if [[ $role == primary ]]; then args+=(--server-id=1 --log-bin=primary-bin --binlog-format=ROW)
  else args+=(--server-id=2 --read-only --relay-log=replica-relay-bin); fi
  # Own session, all stdio detached: must not hold the caller's $(...) pipe open.
  setsid /usr/sbin/mariadbd "${args[@]}" </dev/null >/dev/null 2>&1 &
  wait_for "MariaDB $role on $port" my_ready "$role" $! || die "see $dir/error.log"
}

my_stop() {
  local role=$1 pid
  if my_running "$role"; then
    log "stopping MariaDB $role"
    pid=$(head -n1 "$MY_BASE/$role/mariadbd.pid")
    kill -TERM "$pid"
    wait_for "MariaDB $role to stop" eval '! my_running '"$role" || die "MariaDB $role did not stop"
  fi
  rm -f "$MY_BASE/$role/mariadbd.pid"
}

# Fresh primary/replica pair; replication is configured before `test` is created
# on the primary, so the CREATE DATABASE replicates instead of colliding.
my_pair_create() {
  log "creating MariaDB pair in $MY_BASE"
  my_stop replica; my_stop primary
  rm -rf "$MY_BASE"
  local role
  for role in primary replica; do
    mkdir -p "$MY_BASE/$role"; chown mysql:mysql "$MY_BASE/$role"
    mariadb-install-db --no-defaults --user=mysql --datadir="$MY_BASE/$role/data" \
      --auth-root-authentication-method=normal --skip-test-db --innodb-log-file-size=16M \
      >"$MY_BASE/$role/install.log" 2>&1 || die "mariadb-install-db failed; see $MY_BASE/$role/install.log"
    my_start "$role"
  done
  # install-db (normal auth) already made password-less root@localhost and root@127.0.0.1.
  my_q 3307 "SET sql_log_bin=0; CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl';
             GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';" || die "primary setup failed"
  # MASTER_CONNECT_RETRY=1: reconnect within a second after the primary restarts.
  my_q 3308 "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=3307, MASTER_USER='repl',
             MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE;" ||
    die "replica setup failed"
  my_q 3307 "CREATE DATABASE IF NOT EXISTS test; CREATE DATABASE IF NOT EXISTS testbed;
             CREATE TABLE IF NOT EXISTS testbed.probe (id INT PRIMARY KEY, nonce VARCHAR(64));" ||
    die "creating databases on the primary failed"
}

my_streaming() {
  local st; st=$(mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P3308 -uroot -e 'SHOW SLAVE STATUS\G' 2>/dev/null) || return 1
  grep -q 'Slave_IO_Running: Yes' <<<"$st" && grep -q 'Slave_SQL_Running: Yes' <<<"$st"
}
my_probe_seen() { [[ "$(my_q 3308 'SELECT nonce FROM testbed.probe WHERE id=1')" == "$1" ]]; }

my_wait_replication() {
  wait_for "MariaDB replica threads running" my_streaming || die "see $MY_BASE/replica/error.log"
  local n; n=$(nonce)
  my_q 3307 "REPLACE INTO testbed.probe VALUES (1, '$n')" || die "writing the probe row on 3307 failed"
  wait_for "row replicated to MariaDB replica" my_probe_seen "$n" || die "see $MY_BASE/replica/error.log"
}

my_pair_up() {
  [[ -f $MY_DONE && -d $MY_BASE/primary/data && -d $MY_BASE/replica/data ]] || my_pair_create
  my_start primary
  my_start replica
  my_wait_replication
  touch "$MY_DONE"
}

# ------------------------------------------------------------------------ TLS
# A CA, a server certificate for localhost/127.0.0.1 (not 127.0.0.2, which the
# wrong-host tests dial), a client certificate for `dbi_cert`, and a second CA
# that signed nothing the servers show (the unknown-CA tests).
tls_certs() {
  [[ -f $TLS_DONE ]] && return 0
  command -v openssl >/dev/null || die "openssl is missing: run '$0 deps'"
  log "making the test bed's CA and certificates in $TLS_CERTS"
  rm -rf "$TLS_CERTS"; mkdir -p "$TLS_CERTS"
  ( cd "$TLS_CERTS"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=dbinstance-test-ca \
      -keyout ca.key -out ca.crt
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=dbinstance-other-ca \
      -keyout other-ca.key -out other-ca.crt
    openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt
    openssl req -newkey rsa:2048 -nodes -subj /CN=dbi_cert -keyout client.key -out client.csr
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out client.crt
  ) >"$TLS_BASE/certs.log" 2>&1 || die "making certificates failed; see $TLS_BASE/certs.log"
  chmod 600 "$TLS_CERTS"/*.key
  # Servers holding copies of older certificates are made again.
  rm -f "$PG_TLS/.complete" "$MY_TLS/.complete"
  touch "$TLS_DONE"
}

# server_key_copy DIR OWNER: the CA, the server's certificate and its key where OWNER can read them.
server_key_copy() {
  cp "$TLS_CERTS/ca.crt" "$TLS_CERTS/server.crt" "$TLS_CERTS/server.key" "$1/"
  chown "$2:$2" "$1"/ca.crt "$1"/server.crt "$1"/server.key
  chmod 600 "$1/server.key"
}

pg_tls_q() { PGCONNECT_TIMEOUT=3 psql -X -q -At -h "$PG_TLS/run" -p $PG_TLS_PORT -U postgres -d postgres -c "$1" 2>/dev/null; }
pg_tls_running() { pid_matches "$PG_TLS/data/postmaster.pid" "$PG_TLS/data"; }
pg_tls_ok() { [[ "$(pg_tls_q 'select 1')" == 1 ]]; }

# TLS only (hostssl); `dbi_cert` must show a client certificate naming it.
pg_tls_create() {
  log "creating the PostgreSQL cluster with TLS in $PG_TLS"
  pg_tls_stop
  rm -rf "$PG_TLS"
  mkdir -p "$PG_TLS/data" "$PG_TLS/run" "$PG_TLS/tls"
  chown -R postgres:postgres "$PG_TLS"
  as_pg "$PG_BIN/initdb" -D "$PG_TLS/data" -U postgres -A trust --no-sync >"$PG_TLS/initdb.log" 2>&1 ||
    die "initdb failed; see $PG_TLS/initdb.log"
  server_key_copy "$PG_TLS/tls" postgres
  printf '%s\n' 'local all all trust' \
    'hostssl all dbi_cert 127.0.0.0/8 trust clientcert=verify-full' \
    'hostssl all all 127.0.0.0/8 scram-sha-256' >"$PG_TLS/data/pg_hba.conf"
  printf '%s\n' '# written by scripts/testbed.sh' "port = $PG_TLS_PORT" \
    "listen_addresses = '127.0.0.1,127.0.0.2'" "unix_socket_directories = '$PG_TLS/run'" \
    'shared_buffers = 32MB' 'max_connections = 100' 'ssl = on' \
    "ssl_cert_file = '$PG_TLS/tls/server.crt'" "ssl_key_file = '$PG_TLS/tls/server.key'" \
    "ssl_ca_file = '$PG_TLS/tls/ca.crt'" >>"$PG_TLS/data/postgresql.conf"
  chown postgres:postgres "$PG_TLS/data/pg_hba.conf"
}

pg_tls_start() {
  pg_tls_running && { wait_for "PostgreSQL on $PG_TLS_PORT" pg_tls_ok; return; }
  log "starting the PostgreSQL cluster with TLS on $PG_TLS_PORT"
  rm -f "$PG_TLS/run"/.s.PGSQL."$PG_TLS_PORT"*
  as_pg "$PG_BIN/pg_ctl" -D "$PG_TLS/data" -l "$PG_TLS/server.log" -w -t "$TIMEOUT" start </dev/null >&2 ||
    die "the PostgreSQL cluster on $PG_TLS_PORT did not start; see $PG_TLS/server.log"
  wait_for "PostgreSQL on $PG_TLS_PORT" pg_tls_ok || die "see $PG_TLS/server.log"
}

pg_tls_stop() {
  if pg_tls_running; then
    log "stopping the PostgreSQL cluster on $PG_TLS_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_TLS/data" -m fast -w -t "$TIMEOUT" stop </dev/null >&2
  fi
}

pg_tls_up() {
  [[ "$(cat "$PG_TLS/data/PG_VERSION" 2>/dev/null)" == "$PG_VER" && -f $PG_TLS/.complete ]] || pg_tls_create
  pg_tls_start
  if [[ ! -f $PG_TLS/.complete ]]; then
    pg_tls_q "create role dbi_tls login password '$TLS_PASSWORD'" >/dev/null &&
      pg_tls_q 'create role dbi_cert login' >/dev/null &&
      pg_tls_q 'create database test owner dbi_tls' >/dev/null ||
      die "preparing the cluster on $PG_TLS_PORT failed"
    touch "$PG_TLS/.complete"
  fi
}

my_tls_q() { mariadb --no-defaults --connect-timeout=3 -S "$MY_TLS/mariadbd.sock" -uroot -N -B -e "$1" 2>/dev/null; }
my_tls_running() { pid_matches "$MY_TLS/mariadbd.pid" "--datadir=$MY_TLS/data"; }
my_tls_ready() { kill -0 "$1" 2>/dev/null || die "mariadbd (TLS) exited; see $MY_TLS/error.log"
                 my_tls_q 'select 1' >/dev/null; }

my_tls_start() {
  my_tls_running && return 0
  log "starting MariaDB with TLS on $MY_TLS_PORT"
  rm -f "$MY_TLS/mariadbd.pid" "$MY_TLS/mariadbd.sock"
  setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$MY_TLS/data" --port=$MY_TLS_PORT \
    --bind-address=127.0.0.1,127.0.0.2 --socket="$MY_TLS/mariadbd.sock" --pid-file="$MY_TLS/mariadbd.pid" \
    --log-error="$MY_TLS/error.log" --skip-name-resolve --performance-schema=OFF \
    --innodb-buffer-pool-size=32M --innodb-log-file-size=16M \
    --ssl-ca="$MY_TLS/tls/ca.crt" --ssl-cert="$MY_TLS/tls/server.crt" --ssl-key="$MY_TLS/tls/server.key" \
    --require-secure-transport=ON </dev/null >/dev/null 2>&1 &
  wait_for "MariaDB with TLS on $MY_TLS_PORT" my_tls_ready $! || die "see $MY_TLS/error.log"
}

my_tls_stop() {
  local pid
  if my_tls_running; then
    log "stopping MariaDB with TLS"
    pid=$(head -n1 "$MY_TLS/mariadbd.pid")
    kill -TERM "$pid"
    wait_for "MariaDB with TLS to stop" eval '! my_tls_running' || die "MariaDB with TLS did not stop"
  fi
}

# TLS only (require_secure_transport); `dbi_cert` must show a client certificate.
my_tls_up() {
  if [[ ! -f $MY_TLS/.complete ]]; then
    log "creating MariaDB with TLS in $MY_TLS"
    my_tls_stop
    rm -rf "$MY_TLS"
    mkdir -p "$MY_TLS/tls"; chown mysql:mysql "$MY_TLS"
    server_key_copy "$MY_TLS/tls" mysql
    mariadb-install-db --no-defaults --user=mysql --datadir="$MY_TLS/data" \
      --auth-root-authentication-method=normal --skip-test-db --innodb-log-file-size=16M \
      >"$MY_TLS/install.log" 2>&1 || die "mariadb-install-db failed; see $MY_TLS/install.log"
    my_tls_start
    my_tls_q "CREATE DATABASE IF NOT EXISTS test;
              CREATE USER IF NOT EXISTS 'dbi_tls'@'%' IDENTIFIED BY '$TLS_PASSWORD';
              CREATE USER IF NOT EXISTS 'dbi_cert'@'%' REQUIRE X509;
              GRANT ALL ON test.* TO 'dbi_tls'@'%'; GRANT ALL ON test.* TO 'dbi_cert'@'%';" ||
      die "preparing MariaDB with TLS failed"
    touch "$MY_TLS/.complete"
  fi
  my_tls_start
}

tls_up() { mkdir -p "$TLS_BASE"; tls_certs; pg_tls_up; my_tls_up; }

# ------------------------------------------------------------------ commands
print_env() {
  cat <<EOF
export DBI_PG_URL=postgres://postgres@127.0.0.1:5432/test
export DBI_PG_REPLICA_URL=postgres://postgres@127.0.0.1:5433/test
export DBI_PG_REPLICA2_URL=postgres://postgres@127.0.0.1:5434/test
export DBI_MYSQL_URL=mysql://root@127.0.0.1:3306/test
export DBI_MYSQL_PRIMARY_URL=mysql://root@127.0.0.1:3307/test
export DBI_MYSQL_REPLICA_URL=mysql://root@127.0.0.1:3308/test
export DBI_PG_VICTIM_URL=postgres://postgres@127.0.0.1:5435/test
export DBI_PGBOUNCER_URL=postgres://postgres@127.0.0.1:6433/test
export DBI_PGBOUNCER_REPLICA_URL=postgres://postgres@127.0.0.1:6433/test_replica
export DBI_PGBOUNCER_BENCH_URL=postgres://postgres@127.0.0.1:6433/bench
export DBI_PGBOUNCER_WEB_URL=postgres://postgres@127.0.0.1:6433/web
export DBI_PGBOUNCER_WEB_REPLICA_URL=postgres://postgres@127.0.0.1:6433/web_replica
export DBI_PG_TLS_URL=postgres://dbi_tls:$TLS_PASSWORD@127.0.0.1:$PG_TLS_PORT/test
export DBI_PG_TLS_CERT_URL=postgres://dbi_cert@127.0.0.1:$PG_TLS_PORT/test
export DBI_MYSQL_TLS_URL=mysql://dbi_tls:$TLS_PASSWORD@127.0.0.1:$MY_TLS_PORT/test
export DBI_MYSQL_TLS_CERT_URL=mysql://dbi_cert@127.0.0.1:$MY_TLS_PORT/test
export DBI_TLS_CA=$TLS_CERTS/ca.crt
export DBI_TLS_WRONG_CA=$TLS_CERTS/other-ca.crt
export DBI_TLS_CLIENT_CERT=$TLS_CERTS/client.crt
export DBI_TLS_CLIENT_KEY=$TLS_CERTS/client.key
EOF
}

cmd_up() { pg_replica_up 1; pg_replica_up 2; pg_victim_up; pgb_up; sys_my_start; my_pair_up; tls_up; log "all servers up"; }

cmd_status() {
  s() { if "$@" >/dev/null 2>&1; then echo up; else echo down; fi; }
  # r QUERYFN PORT STREAMCMD...: a replica that answers but does not replicate says so.
  r() { if ! "$1" "$2" 'select 1' >/dev/null 2>&1; then echo down
        elif "${@:3}" >/dev/null 2>&1; then echo up; else echo "up (not replicating)"; fi; }
  printf '%-16s %-16s %s\n' \
    pg-primary 127.0.0.1:5432 "$(s pg_primary_ok)" \
    pg-replica 127.0.0.1:5433 "$(r pg_q 5433 pg_streaming 1)" \
    pg-replica2 127.0.0.1:5434 "$(r pg_q 5434 pg_streaming 2)" \
    pg-victim "127.0.0.1:$PG_VICTIM_PORT" "$(s pg_victim_ok)" \
    pgbouncer "127.0.0.1:$PGB_PORT" "$(s pgb_ok)" \
    mysql 127.0.0.1:3306 "$(s my_q 3306 'select 1')" \
    mysql-primary 127.0.0.1:3307 "$(s my_q 3307 'select 1')" \
    mysql-replica 127.0.0.1:3308 "$(r my_q 3308 my_streaming)" \
    pg-tls "127.0.0.1:$PG_TLS_PORT" "$(s pg_tls_ok)" \
    mysql-tls "127.0.0.1:$MY_TLS_PORT" "$(s my_tls_q 'select 1')"
}

cmd_deps() {
  export DEBIAN_FRONTEND=noninteractive
  local p missing=()
  for p in pkg-config libpq-dev libsqlite3-dev libssl-dev openssl pgbouncer; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ! { command -v pkg-config >/dev/null && { pkg-config --exists libmariadb || pkg-config --exists mysqlclient; }; }; then
    missing+=(libmariadb-dev)
  fi
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  else
    log "build dependencies already installed"
  fi
}

need_kind() { [[ ${1:-} == pg || ${1:-} == mysql ]] || die "expected 'pg' or 'mysql'"; }

main() {
  local cmd=${1:-up}; shift || true
  [[ $cmd == env || $(id -u) == 0 ]] || die "must run as root"
  case $cmd in
    up) cmd_up >&2; print_env ;;
    env) print_env ;;
    status) cmd_status ;;
    deps) cmd_deps ;;
    down) pgb_stop; pg_replica_stop 1; pg_replica_stop 2; pg_victim_stop; my_stop replica; my_stop primary
          pg_tls_stop; my_tls_stop ;;
    reset)
      pgb_stop; pg_replica_stop 1; pg_replica_stop 2; pg_victim_stop; my_stop replica; my_stop primary
      pg_tls_stop; my_tls_stop
      rm -rf "$(pg_rdir 1)" "$(pg_rdir 2)" "$PG_VICTIM" "$PGB_DIR" "$MY_BASE" "$TLS_BASE"
      pg_primary_ok && pg_q 5432 "select pg_drop_replication_slot(slot_name) from pg_replication_slots
                                  where slot_name in ('$(pg_rslot 1)', '$(pg_rslot 2)') and not active" >/dev/null || true
      log "replicas and MariaDB pair data removed" ;;
    # `pg` is replica 1 (DBI_PG_REPLICA_URL); replica 2 comes and goes with up and down.
    stop-replica)  need_kind "${1:-}"; if [[ $1 == pg ]]; then pg_replica_stop 1; else my_stop replica; fi ;;
    start-replica) need_kind "${1:-}"; if [[ $1 == pg ]]; then pg_replica_up 1; else my_pair_up; fi ;;
    stop-primary)  need_kind "${1:-}"; if [[ $1 == pg ]]; then pg_primary_stop; else my_stop primary; fi ;;
    start-primary)
      need_kind "${1:-}"
      if [[ $1 == pg ]]; then
        pg_primary_start
        for n in "${PG_REPLICAS[@]}"; do pg_replica_running "$n" && pg_wait_replication "$n"; done
      else my_start primary; my_running replica && my_wait_replication; fi
      true ;;
    kill-victim) need_kind "${1:-}"; kill_victim "$1" ;;
    restart-victim) need_kind "${1:-}"; restart_victim "$1" ;;
    *) die "unknown command '$cmd' (up|env|status|down|reset|deps|{stop,start}-{replica,primary} pg|mysql|{kill,restart}-victim pg|mysql)" ;;
  esac
}

main "$@"
