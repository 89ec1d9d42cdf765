#!/usr/bin/env bash
# Lab tooling: a real Debian 12 host under systemd, as a local container.
#
#   tests/lab/lab.sh docker    ensure the Docker engine is installed and answering
#   tests/lab/lab.sh image     build the systemd image once (debootstrap), cached by tag
#   tests/lab/lab.sh up        docker + image + the lab host (created or started)
#   tests/lab/lab.sh down      remove the lab host (the image stays cached); never installs
#                              or starts Docker: says so when there is nothing to remove
#   tests/lab/lab.sh status    print what exists
#   tests/lab/lab.sh urls      print how to reach the lab's services
#   tests/lab/lab.sh ssh-host NAME
#                              a host reached like a VM: a container NAME from the same image
#                              with openssh-server (from this machine's Debian mirror), user
#                              `deploy` with passwordless sudo and the key $LAB_SSH_KEY
#                              (generated when missing); prints its address on stdout
#   tests/lab/lab.sh known-hosts NAME
#                              a known_hosts line for NAME's address and ed25519 host key
#   tests/lab/lab.sh rm NAME   remove a host made by ssh-host (only those; nothing if absent)
#   tests/lab/lab.sh disk NAME make (or find) NAME's dedicated datadir disk: an ext4 image of
#                              $LAB_DISK_MB MiB, loop-mounted on this machine; prints the mount point
#   tests/lab/lab.sh disk-rm NAME
#                              unmount and delete NAME's disk (nothing if absent)
#
# The lab host's /var/lib/mysql is its own disk, so the disk-full drill (playbooks/chaos.yml) fills a
# small dedicated filesystem, never this machine's root filesystem. `down` removes it with the host.
#
# Settings (environment):
#   LAB_IMAGE        image tag                          (stockdb/debian12-systemd:latest)
#   LAB_HOST         container and host name            (stockdb-lab)
#   LAB_MEMORY       container memory limit             (2g)
#   LAB_MIRROR       Debian mirror for debootstrap      (read from this machine's apt sources)
#   LAB_SUITE        Debian suite                       (bookworm)
#   LAB_SSH_KEY      private key for ssh-host's `deploy` (.secrets/ssh/id_ed25519, git-ignored)
#   LAB_NETWORK / LAB_IP
#                    ssh-host only: the Docker network and fixed address of the host (Docker's
#                    default bridge and an address it picks; tests/lab/cluster.sh sets both)
#   LAB_DISK_MB      size of the datadir disk (sparse)   (4096)
#   LAB_DISK_DIR     where disk images and mounts live   (/var/lib/stockdb-lab/disks)
#   LAB_PORT_PROMETHEUS / LAB_PORT_GRAFANA
#                    ports published on 127.0.0.1       (9090 / 3000; Alertmanager stays on the host's loopback)
set -euo pipefail

LAB_IMAGE=${LAB_IMAGE:-stockdb/debian12-systemd:latest}
LAB_HOST=${LAB_HOST:-stockdb-lab}
LAB_MEMORY=${LAB_MEMORY:-2g}
LAB_SUITE=${LAB_SUITE:-bookworm}
LAB_DISK_MB=${LAB_DISK_MB:-4096}
LAB_DISK_DIR=${LAB_DISK_DIR:-/var/lib/stockdb-lab/disks}
LAB_PORT_PROMETHEUS=${LAB_PORT_PROMETHEUS:-9090}
LAB_PORT_GRAFANA=${LAB_PORT_GRAFANA:-3000}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/stockdb-dockerd.log}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB_SSH_KEY=${LAB_SSH_KEY:-$REPO_ROOT/.secrets/ssh/id_ed25519}
# Containers made by `ssh-host` carry this label; `rm` removes nothing else.
SSH_HOST_LABEL=stockdb.lab.role=ssh-host

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

# NAME's dedicated disk: a sparse ext4 image loop-mounted at $LAB_DISK_DIR/NAME (made once, mounted
# again after a reboot of this machine). Without lost+found, so MariaDB sees no stray database.
disk() {
  local name=${1:-}
  [ -n "$name" ] || die "usage: $0 disk NAME"
  case "$name" in */*|.*) die "disk name $name: a plain name, please" ;; esac
  local image=$LAB_DISK_DIR/$name.img mnt=$LAB_DISK_DIR/$name
  if ! mountpoint -q "$mnt"; then
    as_root mkdir -p "$mnt"
    if [ ! -f "$image" ]; then
      log "making the disk $image ($LAB_DISK_MB MiB ext4)"
      as_root truncate -s "${LAB_DISK_MB}M" "$image"
      as_root mkfs.ext4 -q -F -m 0 -L "${name:0:16}" "$image"
      as_root mount -o loop "$image" "$mnt"
      as_root rmdir "$mnt/lost+found"
    else
      as_root mount -o loop "$image" "$mnt"
    fi
    log "disk $image mounted at $mnt"
  fi
  echo "$mnt"
}

disk_rm() {
  local name=${1:-}
  [ -n "$name" ] || die "usage: $0 disk-rm NAME"
  local image=$LAB_DISK_DIR/$name.img mnt=$LAB_DISK_DIR/$name
  if mountpoint -q "$mnt"; then
    as_root umount "$mnt" || as_root umount -l "$mnt"
  fi
  # Unmounted, the directory is empty - unless a container ran while its disk was not mounted (a
  # hand-made `molecule create`, a reboot) and wrote a datadir onto this machine's own disk: that goes too.
  if [ -d "$mnt" ]; then
    if [ -n "$(ls -A "$mnt")" ]; then
      log "removing what was written into $mnt while its disk was not mounted"
    fi
    as_root rm -rf --one-file-system "$mnt"
  fi
  if [ -f "$image" ]; then
    as_root rm -f "$image"
    log "disk $image removed"
  fi
  return 0
}

up() {
  ensure_image
  if docker container inspect "$LAB_HOST" >/dev/null 2>&1; then
    if [ -z "$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/var/lib/mysql"}}x{{end}}{{end}}' "$LAB_HOST")" ]; then
      log "note: $LAB_HOST predates its datadir disk; the disk-full drill needs it ('$0 down' then '$0 up')"
    fi
    disk "$LAB_HOST" >/dev/null
    if [ "$(docker inspect -f '{{.State.Running}}' "$LAB_HOST")" != true ]; then
      log "starting the existing lab host $LAB_HOST"
      docker start "$LAB_HOST" >/dev/null
    else
      log "lab host $LAB_HOST is running"
    fi
  else
    local datadisk
    datadisk=$(disk "$LAB_HOST")
    log "creating the lab host $LAB_HOST (memory $LAB_MEMORY, ports on 127.0.0.1, /var/lib/mysql on $datadisk)"
    docker run -d --name "$LAB_HOST" --hostname "$LAB_HOST" \
      "${SYSTEMD_RUN_FLAGS[@]}" -v "$datadisk:/var/lib/mysql" \
      --memory "$LAB_MEMORY" \
      -p "127.0.0.1:$LAB_PORT_PROMETHEUS:9090" \
      -p "127.0.0.1:$LAB_PORT_GRAFANA:3000" \
      "$LAB_IMAGE" /lib/systemd/systemd >/dev/null
  fi
  wait_systemd "$LAB_HOST"
}

# What may be removed without installing or starting anything: 0 when the engine answers,
# otherwise says why there is nothing to remove and returns 1.
docker_present() {
  if ! command -v docker >/dev/null 2>&1; then
    log "Docker is not installed: nothing to remove"
    return 1
  fi
  if ! docker_ok; then
    log "the Docker engine is not answering: nothing removed (start it with '$0 docker' to remove containers)"
    return 1
  fi
}

down() {
  if docker_present; then
    if docker container inspect "$LAB_HOST" >/dev/null 2>&1; then
      docker rm -f "$LAB_HOST" >/dev/null
      log "lab host $LAB_HOST removed"
    else
      log "no lab host $LAB_HOST"
    fi
  fi
  disk_rm "$LAB_HOST"
}

status() {
  command -v docker >/dev/null 2>&1 || { echo "docker: not installed"; return 0; }
  docker_ok || { echo "docker: not answering"; return 0; }
  echo "docker: answering"
  if docker image inspect "$LAB_IMAGE" >/dev/null 2>&1; then echo "image $LAB_IMAGE: cached"; else echo "image $LAB_IMAGE: missing"; fi
  docker ps -a --filter "name=^${LAB_HOST}$" --format 'host {{.Names}}: {{.Status}} {{.Ports}}'
}

urls() {
  cat <<MSG

The lab host $LAB_HOST is provisioned. From this machine:
  Prometheus    http://127.0.0.1:$LAB_PORT_PROMETHEUS/   (targets: /targets, alerts: /alerts)
  Alertmanager  on the lab host's loopback only (alertmanager_listen_address):
                docker exec $LAB_HOST amtool --alertmanager.url=http://127.0.0.1:9093 alert query
  Grafana       http://127.0.0.1:$LAB_PORT_GRAFANA/      (only where the grafana package was installed;
                the lab renders its provisioning and dashboards without it)
  A shell       docker exec -it $LAB_HOST bash
  MariaDB       docker exec -it $LAB_HOST mariadb        (root by unix socket)
  Alert log     docker exec $LAB_HOST tail -f /var/log/stockdb/alerts.log
  Secrets       .secrets/lab/ (generated, git-ignored)
MSG
}

ensure_ssh_key() {
  [ -f "$LAB_SSH_KEY" ] && return 0
  local dir
  dir=$(dirname "$LAB_SSH_KEY")
  mkdir -p "$dir"
  chmod 700 "$dir"
  # Under a lock: `make test` creates the cluster's hosts and the production path's host at the same
  # time, and two ssh-keygen runs would leave hosts trusting a key that was then overwritten.
  (
    flock 9
    [ -f "$LAB_SSH_KEY" ] && exit 0
    ssh-keygen -q -t ed25519 -N '' -C "stockdb-lab-deploy" -f "$LAB_SSH_KEY"
    log "generated the ssh key $LAB_SSH_KEY"
  ) 9>"$dir/.keygen.lock"
}

host_address() {
  docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1" | awk '{print $1}'
}

# A lab host driven like a VM: sshd, a sudo user `deploy` with the lab key, nothing else.
ssh_host() {
  local name=${1:-}
  [ -n "$name" ] || die "usage: $0 ssh-host NAME"
  case "$name" in "$LAB_HOST"|stockdb-molecule*) die "$name is reserved for the lab and Molecule" ;; esac
  command -v ssh-keygen >/dev/null 2>&1 || die "ssh-keygen is missing (Debian package openssh-client)"
  ensure_image
  ensure_ssh_key
  local mirror=${LAB_MIRROR:-}
  [ -n "$mirror" ] || mirror=$(machine_mirror) ||
    die "no Debian mirror found in /etc/apt/sources.list{,.d}; set LAB_MIRROR"
  if docker container inspect "$name" >/dev/null 2>&1; then
    die "a container $name exists already (remove it with '$0 rm $name')"
  fi
  local placement=()
  [ -z "${LAB_NETWORK:-}" ] || placement+=(--network "$LAB_NETWORK")
  [ -z "${LAB_IP:-}" ] || placement+=(--ip "$LAB_IP")
  log "creating the ssh host $name (memory $LAB_MEMORY${LAB_NETWORK:+, network $LAB_NETWORK}${LAB_IP:+, address $LAB_IP})"
  docker run -d --name "$name" --hostname "$name" --label "$SSH_HOST_LABEL" \
    "${SYSTEMD_RUN_FLAGS[@]}" --memory "$LAB_MEMORY" "${placement[@]}" \
    "$LAB_IMAGE" /lib/systemd/systemd >/dev/null
  wait_systemd "$name"
  log "$name: installing openssh-server (mirror from this machine's apt configuration)"
  docker exec -i -e DEBIAN_FRONTEND=noninteractive "$name" sh -euc '
    echo "deb $1 $2 main" > /etc/apt/sources.list
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends openssh-server >/tmp/apt.log 2>&1 ||
      { cat /tmp/apt.log >&2; exit 1; }
    useradd --create-home --shell /bin/bash deploy
    install -d -m 0700 -o deploy -g deploy /home/deploy/.ssh
    cat > /home/deploy/.ssh/authorized_keys
    chown deploy:deploy /home/deploy/.ssh/authorized_keys
    chmod 0600 /home/deploy/.ssh/authorized_keys
    echo "deploy ALL=(ALL) NOPASSWD: ALL" > /etc/sudoers.d/deploy
    chmod 0440 /etc/sudoers.d/deploy
    systemctl enable --now ssh >/dev/null 2>&1
    systemctl is-active --quiet ssh
  ' sh "$mirror" "$LAB_SUITE" < "$LAB_SSH_KEY.pub"
  local address
  address=$(host_address "$name")
  [ -n "$address" ] || die "$name has no network address"
  log "$name: sshd is active; ssh -i $LAB_SSH_KEY deploy@$address"
  echo "$address"
}

known_hosts() {
  local name=${1:-}
  [ -n "$name" ] || die "usage: $0 known-hosts NAME"
  printf '%s %s\n' "$(host_address "$name")" \
    "$(docker exec "$name" cat /etc/ssh/ssh_host_ed25519_key.pub | awk '{print $1, $2}')"
}

rm_host() {
  local name=${1:-}
  [ -n "$name" ] || die "usage: $0 rm NAME"
  docker_present || return 0
  if ! docker container inspect "$name" >/dev/null 2>&1; then
    log "no host $name"
    return 0
  fi
  [ "$(docker inspect -f '{{index .Config.Labels "stockdb.lab.role"}}' "$name")" = ssh-host ] ||
    die "$name was not made by '$0 ssh-host': not removing it"
  docker rm -f "$name" >/dev/null
  log "host $name removed"
}

case "${1:-}" in
  docker) ensure_docker ;;
  image) ensure_image ;;
  up) up ;;
  down) down ;;
  status) status ;;
  urls) urls ;;
  mirror) machine_mirror ;;
  ssh-host) ssh_host "${2:-}" ;;
  known-hosts) known_hosts "${2:-}" ;;
  rm) rm_host "${2:-}" ;;
  disk) disk "${2:-}" ;;
  disk-rm) disk_rm "${2:-}" ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
