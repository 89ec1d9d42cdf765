#!/usr/bin/env bash
# Run Molecule scenarios for `make molecule` and `make test`: each argument is a step, run after the one before;
# scenarios joined by '+' in one step run at the same time.
#   tests/tools/molecule_scenarios.sh default ops+cluster+production+unit
# runs `default` alone (its drills measure trading rates: nothing else may load the machine meanwhile),
# then `ops`, `cluster` and `production` together (they assert what happened - backups restored, nothing
# lost, checksums equal, the vaulted inventory converged - not how fast: sharing the machine makes them
# slower, not wrong). Together they take the time of the longest instead of the sum.
# `production` is not a Molecule scenario: it is the production path over ssh, tests/production/run.sh
# (`make test-production` runs it alone). Nor is `unit`: the unit tests, `make unit` (`make test` runs them
# beside ops, cluster and production, which leave the machine room to spare).
# A scenario run alone writes to the terminal; scenarios run together each write to
# out/molecule-<scenario>.log, which is printed when the step ends. Exits with the first failed
# step's status, after that step's every scenario ended.
# The `default` scenario gets its dedicated 1.5 GiB datadir disk (tests/lab/lab.sh disk), removed after.
set -uo pipefail
cd "$(dirname "$0")/../.."
LAB=tests/lab/lab.sh
mkdir -p out

scenario() {  # NAME: one `molecule test` (or the production path), timed
  local name=$1 t0 rc what="molecule test -s $1"
  [ "$name" != production ] || what="production path (tests/production/run.sh)"
  [ "$name" != unit ] || what="unit tests (make unit)"
  t0=$(date +%s)
  echo "== $what"
  if [ "$name" = default ]; then
    "$LAB" disk-rm stockdb-molecule || return 1  # never a datadir left by an earlier run
    LAB_DISK_MB=1536 "$LAB" disk stockdb-molecule >/dev/null || return 1
  fi
  if [ "$name" = production ]; then
    tests/production/run.sh
  elif [ "$name" = unit ]; then
    make --no-print-directory unit
  else
    molecule test -s "$name"
  fi
  rc=$?
  [ "$name" != default ] || "$LAB" disk-rm stockdb-molecule
  echo "== $what: rc $rc after $(( $(date +%s) - t0 )) s"
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
