# Shared helpers for the project's scripts: a cached test broker (nisshi, a
# Kafka-protocol broker), a cached Python venv with the test clients, and the
# broker started on a free loopback port.
# shellcheck shell=bash

SPINE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SPINE_CACHE="${SPINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spine}"
# nisshi is tansu's successor. tansu 0.6.0's in-memory engine answers a fetch
# from inside a record batch with the next batch, losing the rest of it
# (tests/broker/fetch.rs); nisshi 0.8.1 has the fix (tansu commit 87db6ea).
BROKER_NAME="nisshi"
BROKER_VERSION="0.8.1"
BROKER_ROOT="$SPINE_CACHE/$BROKER_NAME-$BROKER_VERSION"
BROKER_BIN="$BROKER_ROOT/bin/$BROKER_NAME"
PY_VENV="$SPINE_CACHE/venv"
PY_REQUIREMENTS="$SPINE_ROOT/tests/py/requirements.txt"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs the broker into the cache unless it is already there (about 13
# minutes on 2 cores). nisshi declares rustc 1.96 (through rama 0.4) but builds
# on this toolchain, hence --ignore-rust-version; only the in-memory engine
# (feature dynostore) is built.
ensure_broker() {
    if [ -x "$BROKER_BIN" ]; then
        log "$BROKER_NAME $BROKER_VERSION: cached at $BROKER_BIN"
        return
    fi
    log "$BROKER_NAME $BROKER_VERSION: not cached; building it with cargo install (takes ~13 minutes once)"
    CARGO_TARGET_DIR="$SPINE_CACHE/$BROKER_NAME-build" cargo install "$BROKER_NAME" \
        --version "$BROKER_VERSION" --locked --ignore-rust-version \
        --no-default-features --features dynostore --root "$BROKER_ROOT"
    rm -rf "$SPINE_CACHE/$BROKER_NAME-build"
}

# Creates the Python venv with the test clients, reusing it when the requirements did not change.
ensure_venv() {
    local stamp="$PY_VENV/.requirements"
    if [ -x "$PY_VENV/bin/python" ] && cmp -s "$PY_REQUIREMENTS" "$stamp"; then
        log "python test clients: cached in $PY_VENV"
        return
    fi
    log "python test clients: installing into $PY_VENV"
    rm -rf "$PY_VENV"
    python3 -m venv "$PY_VENV"
    "$PY_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$PY_REQUIREMENTS"
    cp "$PY_REQUIREMENTS" "$stamp"
}

# Debian's chromium, for the tests that render pages in a headless browser
# (the status page), and its chromedriver, through which selenium fills the
# form of /docs. Installs them with apt-get if they are missing.
CHROMIUM_BIN="${SPINE_TEST_CHROMIUM:-chromium}"
CHROMEDRIVER_BIN="${SPINE_TEST_CHROMEDRIVER:-chromedriver}"
ensure_chromium() {
    if command -v "$CHROMIUM_BIN" >/dev/null 2>&1 && command -v "$CHROMEDRIVER_BIN" >/dev/null 2>&1; then
        log "chromium: $(command -v "$CHROMIUM_BIN"), $(command -v "$CHROMEDRIVER_BIN")"
        return
    fi
    log "chromium: not installed; installing Debian's chromium and chromium-driver packages (apt-get)"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
    command -v "$CHROMIUM_BIN" >/dev/null 2>&1 && command -v "$CHROMEDRIVER_BIN" >/dev/null 2>&1 || {
        log "chromium could not be installed; the status page and /docs tests need it (or set SPINE_TEST_CHROMIUM and SPINE_TEST_CHROMEDRIVER)"
        return 1
    }
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() {
    local port=$1 tries=100
    while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        tries=$((tries - 1))
        if [ "$tries" -le 0 ]; then
            return 1
        fi
        sleep 0.1
    done
}

# Starts the broker on a free loopback port with in-memory storage. Sets
# BROKER_PID and BROKER_BOOTSTRAP; logs to $1 (default target/broker.log).
# A new group's first rebalance does not wait for more members (Kafka's
# group.initial.rebalance.delay.ms, 3 s by default), as test brokers set it.
start_broker() {
    local logfile="${1:-$SPINE_ROOT/target/broker.log}"
    mkdir -p "$(dirname "$logfile")"
    local port
    port=$(free_port)
    "$BROKER_BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --group-initial-rebalance-delay 0s \
        --storage-engine "memory://$BROKER_NAME/" >"$logfile" 2>&1 &
    BROKER_PID=$!
    BROKER_BOOTSTRAP="127.0.0.1:$port"
    if ! wait_for_port "$port"; then
        log "$BROKER_NAME did not start; its log ($logfile):"
        tail -n 50 "$logfile" >&2
        return 1
    fi
    log "$BROKER_NAME broker running at $BROKER_BOOTSTRAP (pid $BROKER_PID, log $logfile)"
}

stop_broker() {
    if [ -n "${BROKER_PID:-}" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
}

# PostgreSQL for the inbox tests. Uses SPINE_TEST_DATABASE_URL if set, else
# the machine's server at 127.0.0.1:${SPINE_TEST_PG_PORT:-5432} (user
# postgres, trust auth) if it answers; else starts a throwaway cluster from
# Debian's postgresql package (installing it if missing) on a free port, as
# the `postgres` user, stopped by stop_postgres. Exports
# SPINE_TEST_DATABASE_URL; never leaves the tests without a database.
PG_OWN_DIR=""
pg_answers() {
    local url=$1
    command -v psql >/dev/null 2>&1 && psql "$url" -tAc 'select 1' >/dev/null 2>&1
}
ensure_postgres() {
    if [ -n "${SPINE_TEST_DATABASE_URL:-}" ]; then
        log "postgresql: SPINE_TEST_DATABASE_URL=$SPINE_TEST_DATABASE_URL"
        return
    fi
    local url="postgres://postgres@127.0.0.1:${SPINE_TEST_PG_PORT:-5432}/postgres"
    if pg_answers "$url"; then
        export SPINE_TEST_DATABASE_URL="$url"
        log "postgresql: the machine's server at $url"
        return
    fi
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$bin" ] || ! command -v psql >/dev/null 2>&1; then
        log "postgresql: none answers at $url and none is installed; installing Debian's postgresql (apt-get)"
        local sudo=""
        if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
        bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    local port run_as=()
    port=$(free_port)
    PG_OWN_DIR=$(mktemp -d /tmp/spine-pg.XXXXXX)
    # initdb and postgres refuse to run as root.
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$PG_OWN_DIR"
        run_as=(runuser -u postgres --)
    fi
    log "postgresql: none answers at $url; starting a throwaway cluster in $PG_OWN_DIR on port $port"
    "${run_as[@]}" "$bin/initdb" -D "$PG_OWN_DIR/data" -U postgres --auth=trust >"$PG_OWN_DIR/initdb.log" 2>&1 || {
        cat "$PG_OWN_DIR/initdb.log" >&2
        return 1
    }
    "${run_as[@]}" "$bin/pg_ctl" -D "$PG_OWN_DIR/data" -l "$PG_OWN_DIR/server.log" -w \
        -o "-p $port -k $PG_OWN_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null || {
        cat "$PG_OWN_DIR/server.log" >&2
        return 1
    }
    PG_OWN_BIN="$bin"
    export SPINE_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    pg_answers "$SPINE_TEST_DATABASE_URL" || {
        log "postgresql: the throwaway cluster does not answer; its log: $PG_OWN_DIR/server.log"
        return 1
    }
}
stop_postgres() {
    if [ -n "$PG_OWN_DIR" ] && [ -d "$PG_OWN_DIR/data" ]; then
        local run_as=()
        if [ "$(id -u)" -eq 0 ]; then run_as=(runuser -u postgres --); fi
        "${run_as[@]}" "$PG_OWN_BIN/pg_ctl" -D "$PG_OWN_DIR/data" -m fast stop >/dev/null 2>&1 || true
        rm -rf "$PG_OWN_DIR"
    fi
}
