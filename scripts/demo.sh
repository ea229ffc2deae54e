#!/usr/bin/env bash
# The demo: build a signed busybox ACI with `rkt image build`, trust its key by prefix, fetch it
# into the store (verified), show it, run it as a pod, then run a two-app pod (demo-pod.sh). Uses the default data dir (/var/lib/rkt) and config
# (/etc/rkt) unless RKT_DIR / RKT_LOCAL_CONFIG are set, like rkt itself.
set -euo pipefail
cd "$(dirname "$0")/.."
RKT="$PWD/.venv/bin/rkt"
OUT="$PWD/demo-out"
NAME=demo.rkt.local/busybox
VERSION=1.35.0

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

rm -rf "$OUT"; mkdir -p "$OUT/image/rootfs/bin" "$OUT/gnupg"; chmod 700 "$OUT/gnupg"

step "building $NAME:$VERSION from Debian's busybox-static"
cp /bin/busybox "$OUT/image/rootfs/bin/busybox"
for applet in sh ls cat echo hostname ps sleep; do ln -s busybox "$OUT/image/rootfs/bin/$applet"; done
cat > "$OUT/image/manifest" <<JSON
{
  "acKind": "ImageManifest",
  "acVersion": "0.8.11",
  "name": "$NAME",
  "labels": [{"name": "version", "value": "$VERSION"},
             {"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
  "app": {"exec": ["/bin/sh", "-c", "echo hello from rkt; hostname"], "user": "0", "group": "0"}
}
JSON
"$RKT" image build --overwrite --compression=gzip "$OUT/image" "$OUT/busybox.aci"

step "signing it with a fresh demo key (gpg)"
export GNUPGHOME="$OUT/gnupg"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-gen-key "rkt demo <demo@rkt.local>" ed25519 sign never 2>/dev/null
gpg --batch --quiet --armor --export > "$OUT/demo-key.asc"
gpg --batch --quiet --armor --detach-sign -o "$OUT/busybox.aci.asc" "$OUT/busybox.aci"
gpgconf --homedir "$GNUPGHOME" --kill all 2>/dev/null || true

step "trusting the key for prefix demo.rkt.local"
"$RKT" trust --prefix=demo.rkt.local --skip-fingerprint-review "$OUT/demo-key.asc"

step "fetching the image (signature verified against the trusted key)"
"$RKT" fetch --full "$OUT/busybox.aci"

step "the image store"
"$RKT" image list
"$RKT" image cat-manifest "$NAME:$VERSION"
"$RKT" image verify "$NAME:$VERSION"

step "running it as a pod (namespaces, overlay rootfs, default caps and seccomp)"
"$RKT" run --net=none "$NAME:$VERSION" --exec=/bin/sh -- -c \
  'echo "hello from pod $(hostname)"; grep -E "^(CapBnd|Seccomp|NoNewPrivs):" /proc/self/status'
"$RKT" list
"$RKT" gc --grace-period=0s >/dev/null

bash scripts/demo-pod.sh
