#!/usr/bin/env bash
# The multi-host lab: database hosts and a monitoring host reached over ssh like production VMs,
# through an inventory made from inventory/production.example with a vault (issue 13).
#
#   tests/lab/cluster.sh up       the network, every host (created when absent) and the inventory
#                                 (made once; the hosts' ssh keys are pinned again on every `up`)
#   tests/lab/cluster.sh down     remove the hosts and the network; the inventory and the vault stay
#                                 (.secrets/cluster/), so a new `up` keeps the same secrets
#   tests/lab/cluster.sh status   the hosts and their addresses
#   tests/lab/cluster.sh ansible-args
#                                 the arguments that point ansible-playbook at the cluster, one per line
#   tests/lab/cluster.sh vault-pass
#                                 make the vault password file now (else \`up\` makes it with the inventory);
#                                 Molecule's cluster scenario needs it before its first playbook runs
#   tests/lab/cluster.sh purge    down, then remove the inventory and every secret made for it (the vault
#                                 password stays: the next \`up\` encrypts a new vault with it)
#
# `make lab-cluster` runs `up` and then site.yml over ssh with the vault:
#   ansible-playbook $(tests/lab/cluster.sh ansible-args) site.yml
#
# Settings (environment):
#   CLUSTER_DATABASES  database host names (the mariadb group)   (stockdb-db1 stockdb-db2 stockdb-db3)
#   CLUSTER_MONITORING monitoring host name (the monitoring group) (stockdb-mon1)
#   CLUSTER_NETWORK    the Docker network                        (stockdb-cluster)
#   CLUSTER_SUBNET     its subnet; hosts get .11, .12, ... and .21 (172.30.99.0/24)
#   CLUSTER_DIR        inventory, vault password, known hosts    (.secrets/cluster, git-ignored)
#   CLUSTER_DELAYED    a delayed replica: NAME=SECONDS, one of CLUSTER_DATABASES but the first (none)
#                      (mariadb_replication_delay in its host_vars; playbooks/delayed_recover.yml)
#   LAB_MEMORY, LAB_SSH_KEY, LAB_MIRROR: as for tests/lab/lab.sh (2g per host)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

read -r -a DATABASES <<<"${CLUSTER_DATABASES:-stockdb-db1 stockdb-db2 stockdb-db3}"
MONITORING=${CLUSTER_MONITORING:-stockdb-mon1}
NETWORK=${CLUSTER_NETWORK:-stockdb-cluster}
SUBNET=${CLUSTER_SUBNET:-172.30.99.0/24}
DIR=${CLUSTER_DIR:-$repo/.secrets/cluster}
BIN=$repo/${VENV:-.venv}/bin
LAB=$repo/tests/lab/lab.sh
KEY=${LAB_SSH_KEY:-$repo/.secrets/ssh/id_ed25519}
export LAB_SSH_KEY=$KEY

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$SUBNET" =~ ^([0-9]+\.[0-9]+\.[0-9]+)\.0/24$ ]] || die "CLUSTER_SUBNET=$SUBNET: a /24 ending in .0, please"
prefix=${BASH_REMATCH[1]}
[ "${#DATABASES[@]}" -ge 1 ] && [ "${#DATABASES[@]}" -le 8 ] || die "CLUSTER_DATABASES: 1 to 8 names"
DELAYED=${CLUSTER_DELAYED:-}
if [ -n "$DELAYED" ]; then
  [[ "$DELAYED" =~ ^([A-Za-z0-9.-]+)=([0-9]+)$ ]] && [[ " ${DATABASES[*]:1} " == *" ${BASH_REMATCH[1]} "* ]] \
    || die "CLUSTER_DELAYED=$DELAYED: NAME=SECONDS with NAME a database host but the first (the primary)"
fi

# "name address group" of every host, in order.
hosts() {
  local i=11 name
  for name in "${DATABASES[@]}"; do
    echo "$name $prefix.$i mariadb"
    i=$((i + 1))
  done
  echo "$MONITORING $prefix.21 monitoring"
}

up() {
  "$LAB" docker
  if ! docker network inspect "$NETWORK" >/dev/null 2>&1; then
    docker network create --subnet "$SUBNET" --label stockdb.lab.role=cluster "$NETWORK" >/dev/null
    log "network $NETWORK ($SUBNET) created"
  fi
  local name address group
  while read -r name address group; do
    if docker container inspect "$name" >/dev/null 2>&1; then
      docker start "$name" >/dev/null
      log "$name ($group) exists, started"
    else
      LAB_NETWORK=$NETWORK LAB_IP=$address "$LAB" ssh-host "$name" >/dev/null
    fi
  done < <(hosts)
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  # A re-created host has new host keys: pin what each host has now.
  while read -r name address group; do
    "$LAB" known-hosts "$name"
  done < <(hosts) >"$DIR/known_hosts"
  if [ -d "$DIR/inventory" ]; then
    log "inventory $DIR/inventory exists (remove it for new secrets, then down and up)"
  else
    local args=()
    while read -r name address group; do args+=(--host "$group=$name:$address"); done < <(hosts)
    # The monitoring host is the application's side too: the writer endpoint and the trading clients of
    # the drills run there, and the database hosts see its address.
    args+=(--host "writer_endpoint=$MONITORING:$prefix.21")
    # A lab opts in to drills (playbooks/cluster_drill.yml, chaos.yml): every database host is a chaos target.
    while read -r name address group; do
      [ "$group" = mariadb ] && args+=(--host "chaos_targets=$name:$address")
    done < <(hosts)
    "$BIN/python" tests/lab/example_inventory.py --dest "$DIR/inventory" "${args[@]}" \
      --host-var grafana_install_package=false --host-var mariadb_memory_mb=1536 --host-var "mariadb_app_host=$prefix.%" \
      ${DELAYED:+--one-host-var "${DELAYED/=/:mariadb_replication_delay=}"} \
      --key "$KEY" --known-hosts "$DIR/known_hosts" --vault-pass "$DIR/vault-pass" --secrets "$DIR/secrets" \
      --ansible-vault "$BIN/ansible-vault" >/dev/null
    log "inventory $DIR/inventory made from inventory/production.example, vault password $DIR/vault-pass"
  fi
  log "next: ansible-playbook $(ansible_args | tr '\n' ' ')site.yml"
}

down() {
  local name address group
  while read -r name address group; do "$LAB" rm "$name"; done < <(hosts)
  if docker network inspect "$NETWORK" >/dev/null 2>&1; then
    docker network rm "$NETWORK" >/dev/null
    log "network $NETWORK removed"
  fi
}

status() {
  local name address group state
  while read -r name address group; do
    state=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null || echo absent)
    printf '%-16s %-14s %-11s %s\n' "$name" "$address" "$group" "$state"
  done < <(hosts)
}

vault_pass() {
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  if [ ! -s "$DIR/vault-pass" ]; then
    (umask 077 && openssl rand -base64 32 >"$DIR/vault-pass")
    log "vault password $DIR/vault-pass made"
  fi
}

purge() {
  down
  rm -rf "$DIR/inventory" "$DIR/known_hosts" "$DIR/secrets"
  log "the inventory and secrets in $DIR removed"
}

ansible_args() {
  printf '%s\n' -i "$DIR/inventory" --vault-password-file "$DIR/vault-pass"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  ansible-args) ansible_args ;;
  vault-pass) vault_pass ;;
  purge) purge ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
