#!/usr/bin/env bash
# `make test`'s body, after ruff: the full pytest suite over PYTEST_WORKERS processes (pytest-xdist, default 2),
# while deploy/ci.sh (resnet-edge in TensorFlow-free venvs) and scripts/wheel_check.sh (both wheels in a fresh
# venv) run beside it; their output is printed when they end. Exits non-zero if any of the three failed.
# Why in parallel: one after the other they took 44 min on the 2-core CI machine (pytest 37 min of it, much of it
# single-threaded Python and graph tracing); the two side jobs are mostly pip installs, i.e. I/O.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/keras-resnet-test.XXXXXX")
START=$SECONDS

bash deploy/ci.sh > "$LOGS/deploy.log" 2>&1 &
DEPLOY=$!
bash scripts/wheel_check.sh > "$LOGS/wheel.log" 2>&1 &
WHEEL=$!

"$VENV/bin/python" -m pytest -q -n "${PYTEST_WORKERS:-2}" --dist worksteal ${PYTEST_ARGS:-}
PYTEST_RC=$?
echo "== pytest: exit $PYTEST_RC after $((SECONDS - START)) s"
wait "$DEPLOY"
DEPLOY_RC=$?
echo "== deploy/ci.sh: exit $DEPLOY_RC"
cat "$LOGS/deploy.log"
wait "$WHEEL"
WHEEL_RC=$?
echo "== scripts/wheel_check.sh: exit $WHEEL_RC"
cat "$LOGS/wheel.log"
rm -rf "$LOGS"
echo "== make test: pytest $PYTEST_RC, deploy/ci.sh $DEPLOY_RC, wheel check $WHEEL_RC; $((SECONDS - START)) s"
[[ $PYTEST_RC == 0 && $DEPLOY_RC == 0 && $WHEEL_RC == 0 ]]
