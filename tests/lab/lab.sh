#!/usr/bin/env bash
# Lab tooling: a real Debian 12 host under systemd, as a local container.
#
#   tests/lab/lab.sh docker    ensure the Docker engine is installed and answering
#   tests/lab/lab.sh image     build the systemd image once (debootstrap), cached by tag
#   tests/lab/lab.sh up        docker + image + the lab host (created or started)
#   tests/lab/lab.sh down      remove the lab host (the image stays cached)
#   tests/lab/lab.sh status    print what exists
#   tests/lab/lab.sh urls      print how to reach the lab's services
#
# Settings (environment):
#   LAB_IMAGE        image tag                          (stockdb/debian12-systemd:latest)
#   LAB_HOST         container and host name            (stockdb-lab)
#   LAB_MEMORY       container memory limit             (2g)
#   LAB_MIRROR       Debian mirror for debootstrap      (read from this machine's apt sources)
#   LAB_SUITE        Debian suite                       (bookworm)
#   LAB_PORT_PROMETHEUS / LAB_PORT_ALERTMANAGER / LAB_PORT_GRAFANA
#                    ports published on 127.0.0.1       (9090 / 9093 / 3000)
set -euo pipefail

LAB_IMAGE=${LAB_IMAGE:-stockdb/debian12-systemd:latest}
LAB_HOST=${LAB_HOST:-stockdb-lab}
LAB_MEMORY=${LAB_MEMORY:-2g}
LAB_SUITE=${LAB_SUITE:-bookworm}
LAB_PORT_PROMETHEUS=${LAB_PORT_PROMETHEUS:-9090}
LAB_PORT_ALERTMANAGER=${LAB_PORT_ALERTMANAGER:-9093}
LAB_PORT_GRAFANA=${LAB_PORT_GRAFANA:-3000}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/stockdb-dockerd.log}

# The run flags that give systemd a working PID 1 without --privileged (DESIGN.md §3).
SYSTEMD_RUN_FLAGS=(
  --cap-add SYS_ADMIN --cap-add NET_ADMIN
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined
  --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw
  --tmpfs /run --tmpfs /run/lock
)

log() { printf '[lab] %s\n' "$*" >&2; }
die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# The first Debian mirror this machine's apt is configured with (deb822 or one-line format).
machine_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    uri=$(awk '/^URIs:/ {print $2; exit}' "$f")
    case "$uri" in *debian-security*|"") ;; *) echo "$uri"; return 0 ;; esac
  done
  if [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; exit } }' /etc/apt/sources.list)
    [ -n "$uri" ] && { echo "$uri"; return 0; }
  fi
  return 1
}

docker_ok() { docker info >/dev/null 2>&1; }

ensure_docker() {
  docker_ok && return 0
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing the Docker engine from the distribution's packages (docker.io)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  fi
  docker_ok && return 0
  log "starting dockerd in the background (log: $DOCKERD_LOG)"
  as_root sh -c "nohup dockerd >>'$DOCKERD_LOG' 2>&1 &"
  local i
  for i in $(seq 1 60); do
    docker_ok && { log "dockerd is answering"; return 0; }
    sleep 1
  done
  tail -n 20 "$DOCKERD_LOG" >&2 || true
  die "dockerd did not answer within 60 s (see $DOCKERD_LOG)"
}

ensure_image() {
  ensure_docker
  if docker image inspect "$LAB_IMAGE" >/dev/null 2>&1; then
    log "image $LAB_IMAGE is cached"
    return 0
  fi
  local mirror=${LAB_MIRROR:-}
  [ -n "$mirror" ] || mirror=$(machine_mirror) ||
    die "no Debian mirror found in /etc/apt/sources.list{,.d}; set LAB_MIRROR"
  command -v debootstrap >/dev/null 2>&1 || {
    log "installing debootstrap"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  local root
  root=$(mktemp -d /var/tmp/stockdb-rootfs.XXXXXX)
  trap 'as_root rm -rf "$root"' EXIT
  log "building $LAB_IMAGE with debootstrap ($LAB_SUITE, mirror from this machine's apt configuration)"
  as_root debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,python3,python3-apt,sudo,dbus,iproute2,ca-certificates,procps,locales \
    "$LAB_SUITE" "$root" "$mirror" >/dev/null
  # A host that boots like a VM: no getty on a console it does not have, a machine-id made at boot.
  as_root rm -f "$root/etc/machine-id" "$root/var/lib/dbus/machine-id"
  as_root touch "$root/etc/machine-id"
  as_root chroot "$root" systemctl mask getty@tty1.service console-getty.service systemd-firstboot.service >/dev/null 2>&1 || true
  as_root chroot "$root" apt-get clean
  as_root tar -C "$root" -c . | docker import -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' - "$LAB_IMAGE" >/dev/null
  as_root rm -rf "$root"
  trap - EXIT
  log "image $LAB_IMAGE built"
}

wait_systemd() {
  local name=$1 state i
  for i in $(seq 1 60); do
    state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
    case "$state" in
      running|degraded) log "$name: systemd is $state"; return 0 ;;
    esac
    sleep 1
  done
  die "$name: systemd did not come up (last state: ${state:-none})"
}

up() {
  ensure_image
  if docker container inspect "$LAB_HOST" >/dev/null 2>&1; then
    if [ "$(docker inspect -f '{{.State.Running}}' "$LAB_HOST")" != true ]; then
      log "starting the existing lab host $LAB_HOST"
      docker start "$LAB_HOST" >/dev/null
    else
      log "lab host $LAB_HOST is running"
    fi
  else
    log "creating the lab host $LAB_HOST (memory $LAB_MEMORY, ports on 127.0.0.1)"
    docker run -d --name "$LAB_HOST" --hostname "$LAB_HOST" \
      "${SYSTEMD_RUN_FLAGS[@]}" \
      --memory "$LAB_MEMORY" \
      -p "127.0.0.1:$LAB_PORT_PROMETHEUS:9090" \
      -p "127.0.0.1:$LAB_PORT_ALERTMANAGER:9093" \
      -p "127.0.0.1:$LAB_PORT_GRAFANA:3000" \
      "$LAB_IMAGE" /lib/systemd/systemd >/dev/null
  fi
  wait_systemd "$LAB_HOST"
}

down() {
  ensure_docker
  if docker container inspect "$LAB_HOST" >/dev/null 2>&1; then
    docker rm -f "$LAB_HOST" >/dev/null
    log "lab host $LAB_HOST removed"
  else
    log "no lab host $LAB_HOST"
  fi
}

status() {
  docker_ok || { echo "docker: not answering"; return 0; }
  echo "docker: answering"
  if docker image inspect "$LAB_IMAGE" >/dev/null 2>&1; then echo "image $LAB_IMAGE: cached"; else echo "image $LAB_IMAGE: missing"; fi
  docker ps -a --filter "name=^${LAB_HOST}$" --format 'host {{.Names}}: {{.Status}} {{.Ports}}'
}

urls() {
  cat <<MSG

The lab host $LAB_HOST is provisioned. From this machine:
  Prometheus    http://127.0.0.1:$LAB_PORT_PROMETHEUS/   (targets: /targets, alerts: /alerts)
  Alertmanager  http://127.0.0.1:$LAB_PORT_ALERTMANAGER/
  Grafana       http://127.0.0.1:$LAB_PORT_GRAFANA/      (only where the grafana package was installed;
                the lab renders its provisioning and dashboards without it)
  A shell       docker exec -it $LAB_HOST bash
  MariaDB       docker exec -it $LAB_HOST mariadb        (root by unix socket)
  Alert log     docker exec $LAB_HOST tail -f /var/log/stockdb/alerts.log
  Secrets       .secrets/lab/ (generated, git-ignored)
MSG
}

case "${1:-}" in
  docker) ensure_docker ;;
  image) ensure_image ;;
  up) up ;;
  down) down ;;
  status) status ;;
  urls) urls ;;
  mirror) machine_mirror ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
