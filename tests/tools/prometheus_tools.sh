#!/usr/bin/env bash
# Unpack promtool and amtool from the distribution's prometheus and prometheus-alertmanager
# packages into DIR/usr/bin (default .cache/prometheus-tools), without installing the packages
# or starting a server. The packages come from this machine's apt sources, so a separated
# network's mirror works as it is.
set -euo pipefail
dest=${1:-.cache/prometheus-tools}
mkdir -p "$dest/usr/bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download prometheus prometheus-alertmanager >/dev/null 2>&1; then
  apt-get update -qq
  apt-get download prometheus prometheus-alertmanager >/dev/null
fi
for deb in ./*.deb; do dpkg-deb -x "$deb" "$work/x"; done
cd - >/dev/null
cp "$work/x/usr/bin/promtool" "$work/x/usr/bin/amtool" "$dest/usr/bin/"
"$dest/usr/bin/promtool" --version | head -n 1
"$dest/usr/bin/amtool" --version | head -n 1
