#!/usr/bin/env bash
# `make test`'s body, after ruff: the full pytest suite over PYTEST_WORKERS processes (pytest-xdist, default 2),
# while deploy/ci.sh (resnet-edge in TensorFlow-free venvs) and scripts/wheel_check.sh (both wheels in a fresh
# venv) run beside it; their output is printed when they end. Exits non-zero if any of the three failed.
# Why in parallel: one after the other they took 44 min on the 2-core CI machine (pytest 37 min of it, much of it
# single-threaded Python and graph tracing); the two side jobs are mostly pip installs, i.e. I/O.
# Then the ISA-sensitive tests (marker `isa`: int8 TFLite against Keras) run again with the AVX2 kernels, through
# benchmarks/emulate_isa.py --isa avx2, where this CPU has something above AVX2 to hide and can mask CPUID: XNNPACK
# picks its int8 kernels (and their rounding) by instruction set, and CI machines vary (issue 24).
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/keras-resnet-test.XXXXXX")
START=$SECONDS

# Under benchmarks/emulate_isa.py (the whole run as an older CPU), SIGSEGV belongs to the CPUID mask: pytest's
# faulthandler would take it over, in deploy/ci.sh's pytest runs as in ours.
if [[ -n ${RESNET_EDGE_CPUID_HIDDEN:-} ]]; then
    export PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-} -p no:faulthandler"
fi
bash deploy/ci.sh > "$LOGS/deploy.log" 2>&1 &
DEPLOY=$!
bash scripts/wheel_check.sh > "$LOGS/wheel.log" 2>&1 &
WHEEL=$!

# The instruction sets XNNPACK and oneDNN choose kernels by (cpu_flags: /proc/cpuinfo's flags on Linux x86).
NATIVE_ISA=$("$VENV/bin/python" -c "
import platform, sys
sys.path.insert(0, 'benchmarks')
import emulate_isa
try:
    flags = set(emulate_isa.cpu_flags())
except OSError:
    flags = set()
names = [n for n in ('avx2', 'fma') if n in flags] + [n for _, _, n in emulate_isa.FEATURE_BITS if n in flags]
print(' '.join(names) or platform.machine() + ' (no x86 flags)')
" 2>/dev/null || echo unknown)
# Under benchmarks/emulate_isa.py (the whole run as an older CPU: `emulate_isa.py --isa avx2 -- bash .ci/run`),
# /proc/cpuinfo still lists the hidden features: take them off what is printed.
if [[ -n ${RESNET_EDGE_CPUID_HIDDEN:-} ]]; then
    for hidden in $RESNET_EDGE_CPUID_HIDDEN; do
        NATIVE_ISA=$(tr ' ' '\n' <<< "$NATIVE_ISA" | grep -vx "$hidden" | tr '\n' ' ')
    done
    NATIVE_ISA="$(echo $NATIVE_ISA) (emulated: CPUID masks $RESNET_EDGE_CPUID_HIDDEN)"
fi
echo "== pytest on this CPU's own instruction sets: $NATIVE_ISA"
"$VENV/bin/python" -m pytest -q -n "${PYTEST_WORKERS:-2}" --dist worksteal --durations=15 ${PYTEST_ARGS:-}
PYTEST_RC=$?
echo "== pytest: exit $PYTEST_RC after $((SECONDS - START)) s (instruction sets: $NATIVE_ISA)"

# -p no:faulthandler: pytest's faulthandler takes over SIGSEGV, the signal through which the CPUID mask answers.
ISA_RC=0
ISA_START=$SECONDS
if [[ -n ${SKIP_ISA_RERUN:-} ]]; then
    echo "== pytest -m isa as AVX2: skipped (SKIP_ISA_RERUN is set)"
elif [[ -n ${RESNET_EDGE_CPUID_HIDDEN:-} ]]; then
    echo "== pytest -m isa as AVX2: skipped: the whole run above already ran as $NATIVE_ISA"
elif ! grep -qwE 'avx512f|avx_vnni|amx_int8' <<< "$NATIVE_ISA"; then
    echo "== pytest -m isa as AVX2: skipped: this CPU ($NATIVE_ISA) has nothing above AVX2 to hide, so the run" \
         "above already used the kernels the rerun would"
elif ! SHOWN=$("$VENV/bin/python" benchmarks/emulate_isa.py --isa avx2 --show 2>&1); then
    echo "== pytest -m isa as AVX2: skipped: CPUID cannot be masked here: $(grep -m1 'error' <<< "$SHOWN")"
else
    echo "== pytest -m isa as AVX2 (benchmarks/emulate_isa.py --isa avx2; $(grep -m1 'numpy sees' <<< "$SHOWN"))"
    "$VENV/bin/python" benchmarks/emulate_isa.py --isa avx2 -- "$VENV/bin/python" -m pytest -q -p no:faulthandler \
        -n "${PYTEST_WORKERS:-2}" --dist worksteal -m isa --durations=5
    ISA_RC=$?
    echo "== pytest -m isa as AVX2: exit $ISA_RC after $((SECONDS - ISA_START)) s (instruction sets: avx2 fma)"
fi
wait "$DEPLOY"
DEPLOY_RC=$?
echo "== deploy/ci.sh: exit $DEPLOY_RC"
cat "$LOGS/deploy.log"
wait "$WHEEL"
WHEEL_RC=$?
echo "== scripts/wheel_check.sh: exit $WHEEL_RC"
cat "$LOGS/wheel.log"
rm -rf "$LOGS"
echo "== make test: pytest $PYTEST_RC, pytest -m isa as AVX2 $ISA_RC, deploy/ci.sh $DEPLOY_RC, wheel check" \
     "$WHEEL_RC; $((SECONDS - START)) s"
[[ $PYTEST_RC == 0 && $ISA_RC == 0 && $DEPLOY_RC == 0 && $WHEEL_RC == 0 ]]
