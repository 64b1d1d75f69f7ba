# Sourced by the benchmark scripts: throwaway backup servers on loopback (ephemeral ports, rate
# limits off), every one of them stopped again by stop_backup_servers.
#
#   start_backup_server BIN DIR ARGS...   starts BIN with its data in DIR (log in DIR.out/.log)
#                                         and waits until it listens; sets SERVER_URL and
#                                         SERVER_PID and records the PID in BACKUP_SERVER_PIDS
#   stop_backup_servers                   stops every server started so far (TERM, then KILL)
#
# start_backup_server must run in the script's own shell, never in a command substitution
# (`url=$(start_backup_server …)`): the PID would be recorded in the subshell and lost, and the
# server would outlive the script. It refuses to run in a subshell.

BACKUP_SERVER_PIDS=()

start_backup_server() {
    if [ "${BASHPID:-$$}" != "$$" ]; then
        echo "start_backup_server: called in a subshell (e.g. \$(...)); its PID would be lost" >&2
        return 1
    fi
    local bin=$1 dir=$2
    shift 2
    SERVER_URL=
    "$bin" --listen 127.0.0.1:0 --data-dir "$dir" --rate-limit-per-ip 0 --rate-limit-per-account 0 "$@" \
        >"$dir.out" 2>"$dir.log" &
    SERVER_PID=$!
    BACKUP_SERVER_PIDS+=("$SERVER_PID")
    local _
    for _ in $(seq 1 200); do
        SERVER_URL="$(sed -n 's/^backup-server listening on //p' "$dir.out" 2>/dev/null)"
        [ -n "$SERVER_URL" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "backup server in $dir did not start:" >&2
    cat "$dir.log" >&2
    return 1
}

stop_backup_servers() {
    local pid _
    for pid in "${BACKUP_SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${BACKUP_SERVER_PIDS[@]}"; do
        for _ in $(seq 1 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    BACKUP_SERVER_PIDS=()
}
