#!/usr/bin/env bash
# The production path as docs/production.md writes it, end to end, against a lab host reached
# over ssh like a VM:
#   copy inventory/production.example to a temporary directory, fill hosts.yml with the host,
#   make group_vars/all/vault.yml from its .example with a generated value for every vault_*,
#   encrypt it with a generated vault password file (outside the repo), then
#   ansible-playbook --syntax-check site.yml, a run of site.yml over ssh with the vault, and
#   site.yml --check --diff, which must report changed=0; no vault value may appear in the output.
#   (PRODUCTION_FIRST_CHECK=1 adds the --check --diff on the new host that the docs start with.)
# One host plays both the mariadb and the monitoring groups (the time budget of `make test`).
# Two settings are added to the copy in host_vars/, as a user of this machine would:
# grafana_install_package: false (Grafana's package cannot be installed here) and
# mariadb_memory_mb: 1536 (a container sees the whole machine's memory; the host has 2 GiB).
# The inventory is made by tests/lab/example_inventory.py, as the multi-host lab's is.
# The host is removed on exit, whatever happens.
#
# Settings (environment):
#   PRODUCTION_EXAMPLE      the inventory to copy          (inventory/production.example)
#   PRODUCTION_TEST_HOST    container and host name        (stockdb-prodtest-PID)
#   PRODUCTION_FIRST_CHECK  1: also --check --diff before the run, as on a new VM (0: the
#                           Molecule default scenario checks a new host; ~80 s more here)
#   VENV                    the Python environment         (.venv)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

SRC=${PRODUCTION_EXAMPLE:-inventory/production.example}
HOST=${PRODUCTION_TEST_HOST:-stockdb-prodtest-$$}
FIRST_CHECK=${PRODUCTION_FIRST_CHECK:-0}
BIN=$repo/${VENV:-.venv}/bin
LAB=$repo/tests/lab/lab.sh
export ANSIBLE_CONFIG=$repo/ansible.cfg
export ANSIBLE_FORCE_COLOR=0

start=$(date +%s)
step() { printf '\n[production] %s (%d s)\n' "$*" "$(( $(date +%s) - start ))" >&2; }
fail() { printf '[production] FAILED: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN/ansible-playbook" ] || fail "no $BIN/ansible-playbook: run 'make venv'"
[ -d "$SRC" ] || fail "no inventory $SRC"

work=$(mktemp -d /tmp/stockdb-production.XXXXXX)
# The playbooks run in the background (run_logged) so that TERM or INT is acted on at once: bash
# runs a trap only between foreground commands. Cleanup stops them, then removes the host.
child=
run_logged() {  # LOG COMMAND...: run COMMAND, its output on the terminal and in LOG
  local log=$1
  shift
  { "$@" | tee "$log"; } &
  child=$!
  wait "$child"
  child=
}
cleanup() {
  local rc=$?
  if [ -n "$child" ]; then
    pkill -TERM -P "$child" 2>/dev/null || true
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  "$LAB" rm "$HOST" || true
  rm -rf "$work"
  if [ "$rc" -eq 0 ]; then
    printf '[production] passed in %d s\n' "$(( $(date +%s) - start ))" >&2
  else
    printf '[production] failed (exit %d) after %d s\n' "$rc" "$(( $(date +%s) - start ))" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# ssh's connection sharing keeps its sockets with the rest of the run.
export ANSIBLE_SSH_CONTROL_PATH_DIR=$work/cp

step "create the lab host $HOST, reached over ssh as deploy with sudo"
address=$("$LAB" ssh-host "$HOST")
"$LAB" known-hosts "$HOST" >"$work/known_hosts"
key=${LAB_SSH_KEY:-$repo/.secrets/ssh/id_ed25519}

# Grafana's apt repository is unreachable from this machine and Debian does not package Grafana; the
# host is a container given 2 GiB that sees the whole machine's memory.
step "copy $SRC as a user would: $HOST in the mariadb and monitoring groups, a generated vault"
inv=$work/production
pass=$work/vault-pass
(umask 077; : >"$work/secrets")
mapfile -t keys < <("$BIN/python" tests/lab/example_inventory.py --example "$SRC" --dest "$inv" \
  --host "mariadb=$HOST:$address" --host "monitoring=$HOST:$address" \
  --host-var grafana_install_package=false --host-var mariadb_memory_mb=1536 \
  --key "$key" --known-hosts "$work/known_hosts" --vault-pass "$pass" --secrets "$work/secrets" \
  --ansible-vault "$BIN/ansible-vault")
[ "${#keys[@]}" -gt 0 ] || fail "the inventory was not made (above)"
vault=$inv/group_vars/all/vault.yml
playbook=("$BIN/ansible-playbook" -i "$inv" --vault-password-file "$pass")

step "every vault_* reaches the hosts (group_vars loaded and decrypted)"
that=$(printf '"%s is defined",' "${keys[@]}")
"$BIN/ansible" -i "$inv" all --vault-password-file "$pass" -m ansible.builtin.assert \
  -a "{\"that\": [${that%,}], \"fail_msg\": \"the vault file is not loaded for this host\", \"quiet\": true}" ||
  fail "the vault_* variables are not defined for the hosts: is the vault file in group_vars/all/?"

step "ansible-playbook --syntax-check site.yml"
"${playbook[@]}" site.yml --syntax-check

if [ "$FIRST_CHECK" = 1 ]; then
  step "ansible-playbook site.yml --check --diff on the new host: what would change"
  run_logged "$work/first-check.log" "${playbook[@]}" site.yml --check --diff
fi

step "ansible-playbook site.yml over ssh"
run_logged "$work/run.log" "${playbook[@]}" site.yml

# $2 (site.yml by default) --check --diff into $1 must change nothing on any host, and reach $HOST.
nothing_to_change() {
  run_logged "$1" "${playbook[@]}" "${2:-site.yml}" --check --diff
  local recap
  recap=$(sed -n '/^PLAY RECAP/,$p' "$1" | grep -E ' : ok=')
  [ -n "$recap" ] || fail "no PLAY RECAP in the check run"
  if grep -vE 'changed=0 +unreachable=0 +failed=0 ' <<<"$recap" >&2; then
    fail "${2:-site.yml} --check reports changes or failures (above)"
  fi
  grep -q "^$HOST " <<<"$recap" || fail "the check run did not reach $HOST"
}

step "ansible-playbook site.yml --check --diff: nothing left to change"
nothing_to_change "$work/check.log"

step "rotate the exporter's password (playbooks/rotate_secrets.yml), the new one into the vault"
run_logged "$work/rotate.log" "${playbook[@]}" playbooks/rotate_secrets.yml -e rotate_grace_seconds=0 \
  -e '{"rotate_accounts": ["exporter"]}' -e "rotate_vault_password_file=$pass"
rotated=$("$BIN/ansible-vault" view --vault-password-file "$pass" "$vault" |
  sed -n 's/^vault_mariadb_exporter_password: "\(.*\)"$/\1/p')
[ "${#rotated}" -ge 32 ] || fail "the vault holds no new exporter password after the rotation"
! grep -qxF "$rotated" "$work/secrets" || fail "the vault still holds the old exporter password"
echo "$rotated" >>"$work/secrets"

# The rotation touched the database tier only (the account, its option files, the exporter).
step "playbooks/site_database.yml --check after the rotation: the vault and the hosts agree, nothing to change"
nothing_to_change "$work/check-rotated.log" playbooks/site_database.yml

step "no vault value appears in the output of the runs (no_log)"
if grep -F -f "$work/secrets" "$work"/*.log >/dev/null; then
  fail "a vault value is printed in the output of site.yml (a task that carries it lacks no_log)"
fi
