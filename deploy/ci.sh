#!/usr/bin/env bash
# CI for deploy/ (resnet-edge), called from the repository root: builds two TensorFlow-free venvs and runs
# deploy/tests in each. Idempotent: a venv is rebuilt only when deploy/setup.cfg changed (stamp file).
#   .venv-deploy : python3,    pip install ./deploy[litert,test]  (ai-edge-litert, numpy 2)
#   .venv-legacy : python3.11, pip install ./deploy[legacy,test]  (tflite-runtime 2.14, numpy<2)
# Environment: DEPLOY_CI_LEGACY=0 skips the legacy venv; PYTEST_ARGS adds pytest arguments.
set -euo pipefail
cd "$(dirname "$0")/.."

ensure_venv() {  # ensure_venv DIR PYTHON EXTRAS
    local dir=$1 python=$2 extras=$3 stamp="$1/.resnet-edge-installed"
    local want
    want="$extras $(cksum < deploy/setup.cfg)"
    if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
        # the package itself is installed editable, so source changes need no reinstall
        return
    fi
    rm -rf "$dir"
    "$python" -m venv "$dir"
    "$dir/bin/pip" install --quiet --upgrade pip
    "$dir/bin/pip" install --quiet -e "./deploy[$extras]"
    echo "$want" > "$stamp"
}

run_tests() {  # run_tests DIR
    local dir=$1
    echo "== $dir: $("$dir/bin/python" -c 'import sys; print(sys.version.split()[0])') ==" \
         "$("$dir/bin/python" -m pip list 2>/dev/null | grep -iE '^(ai-edge-litert|tflite-runtime|numpy) ' | tr -s ' ' | paste -sd, -)"
    if "$dir/bin/python" -c "import tensorflow" 2>/dev/null; then
        echo "error: tensorflow is importable in $dir; the deploy tests must run without it" >&2
        exit 1
    fi
    "$dir/bin/python" -m pytest -q deploy/tests ${PYTEST_ARGS:-}
}

ensure_venv .venv-deploy python3 litert,test
run_tests .venv-deploy

if [[ ${DEPLOY_CI_LEGACY:-1} != 0 ]]; then
    if command -v python3.11 >/dev/null; then
        ensure_venv .venv-legacy python3.11 legacy,test
        run_tests .venv-legacy
    else
        echo "python3.11 not found: skipping the tflite-runtime 2.14 (legacy) run" >&2
    fi
fi
