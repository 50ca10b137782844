#!/usr/bin/env bash
# Runs the test suite once, with the coverage bar on nvrshare.protocol.
#
# If a few tests fail (at most MAX_RERUNS) and coverage was met, those tests are
# run once more, alone, in a fresh pytest process. A test that passes there is
# printed as FLAKY: the run stays green but the flake is on record, the way
# CPython's regrtest re-runs its failures. A test that fails twice fails the
# run, and so does any wider breakage, a coverage miss or an empty suite.
set -uo pipefail

PY=${PY:-.venv/bin/python}
MAX_RERUNS=${MAX_RERUNS:-3}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$work/pytest.log

"$PY" -m pytest -o cache_dir="$work/cache" \
    --cov=nvrshare.protocol --cov-branch --cov-report=term-missing:skip-covered \
    --cov-fail-under=100 "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: the suite is broken" >&2
    exit 5
fi
[ "$rc" -eq 1 ] || exit "$rc"

failed_file=$work/cache/v/cache/lastfailed
mapfile -t failed < <("$PY" -c '
import json, sys
try:
    ids = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    ids = {}
print("\n".join(sorted(ids)))
' "$failed_file" | sed '/^$/d')

if [ "${#failed[@]}" -eq 0 ]; then
    exit 1  # no failed test on record: coverage or the session itself failed
fi
if ! grep -q "Required test coverage of 100% reached" "$log"; then
    exit 1
fi
if [ "${#failed[@]}" -gt "$MAX_RERUNS" ]; then
    echo "${#failed[@]} tests failed: too many to call flaky, not re-running" >&2
    exit 1
fi

echo
echo "=== re-running ${#failed[@]} failed test(s) once, alone, in a fresh process ==="
"$PY" -m pytest -p no:cacheprovider --no-cov "${failed[@]}"
rerun_rc=$?
if [ "$rerun_rc" -ne 0 ]; then
    echo "failed again on re-run: a real failure" >&2
    exit "$rerun_rc"
fi
echo
echo "=== FLAKY: failed, then passed alone on re-run (a bug to fix, not a pass to trust): ==="
printf '  %s\n' "${failed[@]}"
exit 0
