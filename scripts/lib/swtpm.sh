# Sourced by the scripts: a software TPM 2.0 (swtpm) for the TPM key wrapper's tests and benchmark.
# Needs scripts/lib/system-deps.sh (apt_install), which it sources.
#
#   ensure_swtpm          installs swtpm, swtpm-tools, tpm2-tools and the TSS 2.0 libraries
#                         (libtss2-dev, which the `tpm` feature links) with apt when root and
#                         missing; otherwise says what to install
#   start_swtpm DIR       starts `swtpm socket` on loopback with fresh state in DIR (wiped first),
#                         already started up; exports TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=P
#                         (the TCTI the vault and tpm2-tools use) and VAULT_TEST_SWTPM=1, which
#                         the build scripts of vault-tpm and vault-cli turn into
#                         cfg(swtpm_available) so the swtpm tests run; sets SWTPM_PID
#   stop_swtpm            stops it by PID
#
# The tests that need several TPMs, a clear or a lockout start their own instances
# (test-support's `swtpm` module); this one is the TPM the environment names.

. "$(dirname "${BASH_SOURCE[0]}")/system-deps.sh"

ensure_swtpm() {
    local missing=()
    command -v swtpm >/dev/null 2>&1 || missing+=(swtpm swtpm-tools)
    command -v tpm2_getcap >/dev/null 2>&1 || missing+=(tpm2-tools)
    pkg-config --exists tss2-esys tss2-tctildr tss2-mu tss2-sys 2>/dev/null || missing+=(libtss2-dev)
    apt_install "TPM test packages" "install them, e.g. with apt-get" "${missing[@]}"
}

start_swtpm() {
    local dir=$1 port= i
    rm -rf "$dir"
    mkdir -p "$dir"
    for i in $(seq 1 20); do
        # A free pair of loopback ports: P for the TPM, P + 1 for swtpm's control channel.
        port=$(python3 - <<'PY'
import random, socket
while True:
    port = random.randint(20000, 44999)
    ok = True
    for p in (port, port + 1):
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
)
        swtpm socket --tpm2 --tpmstate dir="$dir" \
            --server type=tcp,port="$port",bindaddr=127.0.0.1 \
            --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
            --flags not-need-init,startup-clear --log file="$dir/swtpm.log" >"$dir/swtpm.out" 2>&1 &
        SWTPM_PID=$!
        export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port"
        local j
        for j in $(seq 1 50); do
            kill -0 "$SWTPM_PID" 2>/dev/null || break
            if tpm2_getcap properties-fixed >/dev/null 2>&1; then
                export VAULT_TEST_SWTPM=1
                echo "swtpm ready: $TPM2TOOLS_TCTI (pid $SWTPM_PID, state $dir)"
                return 0
            fi
            sleep 0.1
        done
        kill "$SWTPM_PID" 2>/dev/null || true
        wait "$SWTPM_PID" 2>/dev/null || true
    done
    echo "swtpm did not start" >&2
    cat "$dir/swtpm.out" >&2 || true
    return 1
}

stop_swtpm() {
    if [ -n "${SWTPM_PID:-}" ] && kill -0 "$SWTPM_PID" 2>/dev/null; then
        kill "$SWTPM_PID" 2>/dev/null || true
        wait "$SWTPM_PID" 2>/dev/null || true
    fi
    SWTPM_PID=
}
