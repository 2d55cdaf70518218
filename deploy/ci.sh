#!/usr/bin/env bash
# The deploy tests in environments WITHOUT TensorFlow, as on a device:
#   .venv-deploy  python3 + ai-edge-litert (numpy 2)
#   .venv-legacy  python3.11 + tflite-runtime 2.14 (numpy<2), the last release of the old runtime
# Run from anywhere; idempotent (existing environments are reused and updated).
set -euo pipefail
cd "$(dirname "$0")/.."

run() {  # run VENV PYTHON EXTRA
  local venv=$1 python=$2 extra=$3
  [[ -x $venv/bin/python ]] || "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "./deploy[$extra,test]"
  if "$venv/bin/python" -c "import tensorflow" 2>/dev/null; then
    echo "deploy/ci.sh: $venv has TensorFlow; the deploy tests must run without it" >&2
    exit 1
  fi
  echo "== deploy tests in $venv ($extra runtime)"
  "$venv/bin/python" -m pytest -q deploy/tests -p no:cacheprovider
}

run .venv-deploy python3 litert
if command -v python3.11 >/dev/null; then
  run .venv-legacy python3.11 legacy
else
  echo "deploy/ci.sh: python3.11 not found: skipping the tflite-runtime 2.14 environment" >&2
fi
