#!/usr/bin/env bash
# The test command: prepares the Python virtualenv the SDK-compatibility test needs
# (.venv in the repository root, with tests/python/requirements.txt), then runs the whole
# cargo test suite against it. Extra arguments go to `cargo test`, e.g. `scripts/test.sh sdk_`.
# SWITCHBOARD_REQUIRE_PYTHON=1 makes a missing interpreter a failure of the SDK test (plain
# `cargo test` skips it instead), so this script, and CI which runs it, can never skip it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
python="$venv/bin/python"
requirements="$repo/tests/python/requirements.txt"
stamp="$venv/.requirements.sha256"

log() { printf 'scripts/test.sh: %s\n' "$*" >&2; }

# Debian splits venv/ensurepip out of python3; install it when we may.
install_venv_support() {
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        log "python3 cannot create a virtualenv here; install python3-venv (e.g. 'sudo apt-get install python3-venv') and rerun."
        return 1
    fi
    log "installing python3 and python3-venv with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        python3 python3-venv >/dev/null
}

create_venv() {
    rm -rf "$venv"
    python3 -m venv "$venv"
}

if [[ ! -x "$python" ]] || ! "$python" -m pip --version >/dev/null 2>&1; then
    log "creating $venv"
    if ! command -v python3 >/dev/null 2>&1; then
        install_venv_support
    fi
    if ! create_venv; then
        # A half-made venv (no ensurepip) is left behind; start over once venv is installed.
        install_venv_support
        create_venv
    fi
fi

wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$wanted" ]] \
    || ! "$python" -c 'import openai' >/dev/null 2>&1; then
    log "installing $requirements into $venv"
    "$python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    printf '%s\n' "$wanted" >"$stamp"
fi

cd "$repo"
SWITCHBOARD_PYTHON="$python" SWITCHBOARD_REQUIRE_PYTHON=1 exec cargo test --locked "$@"
