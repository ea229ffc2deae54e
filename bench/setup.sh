#!/usr/bin/env bash
# The peer runtimes the benchmarks compare rkt against (crun, runc, systemd-nspawn), from Debian;
# installs only what is missing. `make bench` runs it first. Needs root to install.
set -euo pipefail
PACKAGES=(crun runc systemd-container busybox-static)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench-setup: missing Debian packages (${missing[*]}); run as root" >&2
    exit 1
  fi
  echo "bench-setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
