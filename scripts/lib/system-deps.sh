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
    apt_install "system packages" "install them, e.g. with apt-get" "${missing[@]}"
}

# apt_install WHAT HINT PACKAGE...: installs the packages with apt when running as root (nothing
# to do when none are given); otherwise names them and HINT on stderr and fails.
apt_install() {
    local what="$1" hint="$2"
    shift 2
    [ $# -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing $what: $*"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
    else
        echo "Missing $what: $* ($hint)" >&2
        return 1
    fi
}
