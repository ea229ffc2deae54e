#!/usr/bin/env bash
# Installs everything rkt needs on a fresh Debian 12 machine, as root: apt packages, the rkt and
# rkt-admin groups, and the .venv with rkt and its test tools. Idempotent; `make` runs it once per
# change of pyproject.toml or of this script.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv          # the interpreter the .venv is made from (Debian's 3.11)
  busybox-static                # test and demo images
  gnupg                         # signing keys in tests and the demo
  appc-spec                     # actool, to check our ACIs against the reference validator
  zstd bzip2 xz-utils openssl   # compressed test images, test CAs
  passwd                        # useradd/groupadd for the privilege tests
  libseccomp-dev                # seccomp filters: the native app-exec links libseccomp.a
  musl-tools                    # musl-gcc: pod-init, run-waiter, pod-supervisor start without glibc's
                                # cpuid probing (~0.7 ms a process here; docs/architecture.md)
  util-linux                    # unshare, used by the ABI test stage1
  docker-registry skopeo umoci  # Docker/OCI images: test registry, pushes, bench peer
  containernetworking-plugins iptables  # pod networks: CNI plugins (/usr/lib/cni), portmap/ipMasq rules
  iproute2                      # ip: test network namespaces and veths
  gcc libc6-dev                 # static helpers compiled by the security escape tests
  gzip coreutils                # zcat, sha512sum in tests
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages (${missing[*]}); run as root" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$(id -u)" -eq 0 ]; then
  getent group rkt >/dev/null || groupadd --system rkt
  getent group rkt-admin >/dev/null || groupadd --system rkt-admin
fi

PYTHON=/usr/bin/python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
# The rkt command itself: pip's console script starts the interpreter with `site`, which reads
# every .pth file and runs Debian's sitecustomize (~3 ms on each rkt command). Ours starts it
# with -S and puts the venv's site-packages and our src/ on sys.path itself (PYTHONPATH still
# comes first: bench/ --against relies on it), then loads rkt's modules from the bundle `make
# setup` builds (rkt/bundle.py; a checkout without one imports as usual). docs/architecture.md,
# "rkt's modules are loaded from one file".
SITE_PACKAGES=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat > .venv/bin/rkt.tmp <<LAUNCHER
#!$PWD/.venv/bin/python -S
# rkt launcher (written by scripts/setup.sh)
import os, sys
try:  # ^C while rkt loads: what rkt.cli.main says of it later, not a traceback
    sys.path += ["$SITE_PACKAGES", "$PWD/src"]
    # rkt is imported from where Python would find it (PYTHONPATH first: bench/ --against,
    # then src/), but without listing the standard library's directories on the way (~0.5 ms)
    home = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p] + ["$PWD/src"]
    sys.path.insert(0, next(p for p in home if os.path.isfile(p + "/rkt/__init__.py")))
    try:
        from rkt.bundle import install
    except ImportError:
        pass
    else:
        install()
    del sys.path[0]
    from rkt.cli.main import main
except KeyboardInterrupt:
    sys.stderr.write("rkt: interrupted\n")
    sys.exit(130)
sys.exit(main())
LAUNCHER
chmod 755 .venv/bin/rkt.tmp
mv .venv/bin/rkt.tmp .venv/bin/rkt
.venv/bin/python -m compileall -q src   # bytecode: every rkt command and stage1 starts faster
echo "setup: ready ($(.venv/bin/rkt version | head -1))" >&2
