#!/usr/bin/env bash
# Unpack promtool from the distribution's prometheus package into DIR (default .cache/promtool),
# without installing the package or starting a server. The package comes from this machine's
# apt sources, so a separated network's mirror works as it is.
set -euo pipefail
dest=${1:-.cache/promtool}
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download prometheus >/dev/null 2>&1; then
  apt-get update -qq
  apt-get download prometheus >/dev/null
fi
dpkg-deb -x prometheus_*.deb "$work/x"
cd - >/dev/null
mkdir -p "$dest/usr/bin"
cp "$work/x/usr/bin/promtool" "$dest/usr/bin/promtool"
"$dest/usr/bin/promtool" --version | head -n 1
