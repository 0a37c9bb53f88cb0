# Shared helpers for the project's scripts: a cached tansu broker, a cached
# Python venv with the test clients, and a broker started on a free loopback port.
# shellcheck shell=bash

SPINE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SPINE_CACHE="${SPINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spine}"
TANSU_VERSION="0.6.0"
TANSU_ROOT="$SPINE_CACHE/tansu-$TANSU_VERSION"
TANSU_BIN="$TANSU_ROOT/bin/tansu"
PY_VENV="$SPINE_CACHE/venv"
PY_REQUIREMENTS="$SPINE_ROOT/tests/py/requirements.txt"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs tansu into the cache unless it is already there (about 10 minutes on 2 cores).
ensure_tansu() {
    if [ -x "$TANSU_BIN" ]; then
        log "tansu $TANSU_VERSION: cached at $TANSU_BIN"
        return
    fi
    log "tansu $TANSU_VERSION: not cached; building it with cargo install (takes ~10 minutes once)"
    # The in-memory storage engine needs the dynostore feature.
    CARGO_TARGET_DIR="$SPINE_CACHE/tansu-build" cargo install tansu \
        --version "$TANSU_VERSION" --locked --features dynostore --root "$TANSU_ROOT"
    rm -rf "$SPINE_CACHE/tansu-build"
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

# Starts tansu on a free loopback port with in-memory storage. Sets TANSU_PID
# and TANSU_BOOTSTRAP; logs to $1 (default target/tansu.log).
start_tansu() {
    local logfile="${1:-$SPINE_ROOT/target/tansu.log}"
    mkdir -p "$(dirname "$logfile")"
    local port
    port=$(free_port)
    "$TANSU_BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "memory://tansu/" >"$logfile" 2>&1 &
    TANSU_PID=$!
    TANSU_BOOTSTRAP="127.0.0.1:$port"
    if ! wait_for_port "$port"; then
        log "tansu did not start; its log ($logfile):"
        tail -n 50 "$logfile" >&2
        return 1
    fi
    log "tansu broker running at $TANSU_BOOTSTRAP (pid $TANSU_PID, log $logfile)"
}

stop_tansu() {
    if [ -n "${TANSU_PID:-}" ] && kill -0 "$TANSU_PID" 2>/dev/null; then
        kill "$TANSU_PID" 2>/dev/null || true
        wait "$TANSU_PID" 2>/dev/null || true
    fi
}
