#!/usr/bin/env bash
# Run Molecule scenarios for `make molecule`: each argument is a step, run after the one before;
# scenarios joined by '+' in one step run at the same time.
#   tests/tools/molecule_scenarios.sh default ops+cluster
# runs `default` alone (its drills measure trading rates: nothing else may load the machine meanwhile),
# then `ops` and `cluster` together (they assert what happened - backups restored, nothing lost, checksums
# equal - not how fast: sharing the machine makes them slower, not wrong). Together they take the time of
# the longer one instead of the sum.
# A scenario run alone writes to the terminal; scenarios run together each write to
# out/molecule-<scenario>.log, which is printed when the step ends. Exits with the first failed
# step's status, after that step's every scenario ended.
# The `default` scenario gets its dedicated 1.5 GiB datadir disk (tests/lab/lab.sh disk), removed after.
set -uo pipefail
cd "$(dirname "$0")/../.."
LAB=tests/lab/lab.sh
mkdir -p out

scenario() {  # NAME: one `molecule test`, timed
  local name=$1 t0 rc
  t0=$(date +%s)
  echo "== molecule test -s $name"
  if [ "$name" = default ]; then
    "$LAB" disk-rm stockdb-molecule || return 1  # never a datadir left by an earlier run
    LAB_DISK_MB=1536 "$LAB" disk stockdb-molecule >/dev/null || return 1
  fi
  molecule test -s "$name"
  rc=$?
  [ "$name" != default ] || "$LAB" disk-rm stockdb-molecule
  echo "== molecule test -s $name: rc $rc after $(( $(date +%s) - t0 )) s"
  return "$rc"
}

for step in "$@"; do
  IFS=+ read -r -a names <<<"$step"
  if [ "${#names[@]}" -eq 1 ]; then
    scenario "${names[0]}" || exit $?
    continue
  fi
  echo "== molecule: ${names[*]} at the same time (logs: out/molecule-<scenario>.log, printed as each ends)"
  declare -A pids=()
  for name in "${names[@]}"; do
    scenario "$name" >"out/molecule-$name.log" 2>&1 &
    pids[$name]=$!
  done
  failed=0
  for name in "${names[@]}"; do
    wait "${pids[$name]}"
    rc=$?
    cat "out/molecule-$name.log"
    [ "$rc" -eq 0 ] || [ "$failed" -ne 0 ] || failed=$rc
  done
  unset pids
  [ "$failed" -eq 0 ] || exit "$failed"
done
