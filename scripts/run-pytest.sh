#!/usr/bin/env bash
# Runs the test suite in two steps.
#
# 1. tests/protocol with the coverage bar: 100% branch coverage of
#    nvrshare.protocol from its own tests (pure and deterministic: no re-run).
# 2. Everything else, without coverage tracing (it would cost a quarter of the
#    suite's time and measures nothing the bar needs).
#
# If a few tests of step 2 fail (at most MAX_RERUNS), they are run once more,
# on their own, in a fresh pytest process. Only when every one of them then
# passes (not skipped, not errored) are they printed as FLAKY and the run stays
# green, the flake on record, the way CPython's regrtest re-runs its failures.
# A test that fails twice fails the run, and so does any wider breakage, a
# coverage miss, pytest's own errors, or a step that collects nothing (exit 5).
#
# With arguments (a developer's subset, e.g. `make test PYTEST_ARGS=tests/agent`)
# only step 2 runs, on those arguments.
set -uo pipefail

PY=${PY:-.venv/bin/python}
MAX_RERUNS=${MAX_RERUNS:-3}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

collected_nothing() {
    echo "pytest collected no tests in $1: the suite is broken" >&2
    exit 5
}

if [ "$#" -eq 0 ]; then
    "$PY" -m pytest -p no:cacheprovider tests/protocol \
        --cov=nvrshare.protocol --cov-branch --cov-report=term-missing:skip-covered \
        --cov-fail-under=100
    rc=$?
    [ "$rc" -eq 5 ] && collected_nothing tests/protocol
    [ "$rc" -eq 0 ] || exit "$rc"
    set -- --ignore=tests/protocol
fi

"$PY" -m pytest -o cache_dir="$work/cache" "$@"
rc=$?
[ "$rc" -eq 5 ] && collected_nothing "$*"
[ "$rc" -eq 1 ] || exit "$rc"

mapfile -t failed < <("$PY" -c '
import json, sys
try:
    ids = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    ids = {}
print("\n".join(sorted(ids)))
' "$work/cache/v/cache/lastfailed" | sed '/^$/d')

if [ "${#failed[@]}" -eq 0 ]; then
    exit 1  # no failed test on record: the session itself failed
fi
if [ "${#failed[@]}" -gt "$MAX_RERUNS" ]; then
    echo "${#failed[@]} tests failed: too many to call flaky, not re-running" >&2
    exit 1
fi

echo
echo "=== re-running ${#failed[@]} failed test(s) once, on their own, in a fresh process ==="
"$PY" -m pytest -p no:cacheprovider --junitxml="$work/rerun.xml" "${failed[@]}"
rerun_rc=$?
if [ "$rerun_rc" -ne 0 ]; then
    echo "failed again on re-run: a real failure" >&2
    exit "$rerun_rc"
fi
# A skip on the re-run (a service gone, a tool missing) proves nothing: all must pass.
if ! "$PY" - "$work/rerun.xml" "${#failed[@]}" <<'PYEOF'
import sys
import xml.etree.ElementTree as ET

suite = ET.parse(sys.argv[1]).getroot()
suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
sys.exit(0 if passed == int(sys.argv[2]) == counts["tests"] else 1)
PYEOF
then
    echo "the re-run did not pass every failed test (skipped or not run): a real failure" >&2
    exit 1
fi
echo
echo "=== FLAKY: failed, then passed on re-run (a bug to fix, not a pass to trust): ==="
printf '  %s\n' "${failed[@]}"
exit 0
