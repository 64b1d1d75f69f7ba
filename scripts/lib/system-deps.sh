# Sourced by the scripts: makes sure the system packages the build and tests need are present.
# SQLCipher is compiled from source by rusqlite and links the system libcrypto, so it needs the
# OpenSSL headers and pkg-config; the test venv needs python3's venv module.
ensure_system_deps() {
    local missing=()
    [ -f /usr/include/openssl/evp.h ] || missing+=(libssl-dev)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    command -v cc >/dev/null 2>&1 || missing+=(gcc)
    # The backup-server TLS test makes its certificate with the openssl command.
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing system packages: ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
        echo "Missing system packages: ${missing[*]} (install them, e.g. with apt-get)" >&2
        return 1
    fi
}
