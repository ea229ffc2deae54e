#!/usr/bin/env bash
# The two-format pod (rkt's own demo, natively): one pod, two apps sharing the pod's localhost:
#   - "server": a Docker image (busybox httpd with a CGI hit counter), built as an OCI layout with
#     umoci, pushed with skopeo to a docker-registry started here on 127.0.0.1 (a free port), and
#     pulled by rkt over the Registry API v2 as stacked layers;
#   - "counter": a signed ACI, fetched with its signature verified, that polls the server with
#     wget and prints each answer: the counter counting.
# Called by scripts/demo.sh (or alone, as root). Honours RKT_DIR / RKT_LOCAL_CONFIG like rkt; the
# registry is stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
RKT="$PWD/.venv/bin/rkt"
OUT="$PWD/demo-out/pod"
HITS=${DEMO_HITS:-5}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
for tool in docker-registry skopeo umoci gpg busybox; do
  command -v "$tool" >/dev/null || { echo "demo-pod: needs $tool (run make setup)" >&2; exit 1; }
done

rm -rf "$OUT"; mkdir -p "$OUT/gnupg" "$OUT/registry" "$OUT/tree/bin" "$OUT/tree/www/cgi-bin"
chmod 700 "$OUT/gnupg"
REG_PID=""
cleanup() { if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT

step "starting a local docker-registry on 127.0.0.1"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$OUT/registry/config.yml" <<YAML
version: 0.1
log: {level: info, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $OUT/registry/storage}}
http: {addr: 127.0.0.1:$PORT}
YAML
mkfifo "$OUT/registry/log.fifo"
docker-registry serve "$OUT/registry/config.yml" > "$OUT/registry/log.fifo" 2>&1 &
REG_PID=$!
# the registry logs "listening on" once its socket is bound: wait for that line, keep draining
exec 3< "$OUT/registry/log.fifo"
while IFS= read -r line <&3; do
  echo "$line" >> "$OUT/registry/registry.log"
  case $line in *"listening on"*) break;; esac
done
( cat <&3 >> "$OUT/registry/registry.log" ) &
echo "registry: 127.0.0.1:$PORT (pid $REG_PID)"

step "building the server as a Docker/OCI image with umoci (2 layers) and pushing it with skopeo"
cp /bin/busybox "$OUT/tree/bin/busybox"
for applet in sh httpd cat echo sleep; do ln -s busybox "$OUT/tree/bin/$applet"; done
tar -C "$OUT/tree" --owner=0 --group=0 --numeric-owner -cf "$OUT/base.tar" bin
cat > "$OUT/tree/www/cgi-bin/hit" <<'CGI'
#!/bin/sh
n=$(cat /tmp/hits 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > /tmp/hits
printf 'Content-Type: text/plain\r\n\r\nhit %s, served by httpd from a Docker image\n' "$n"
CGI
chmod 755 "$OUT/tree/www/cgi-bin/hit"
tar -C "$OUT/tree" --owner=0 --group=0 --numeric-owner -cf "$OUT/www.tar" www
L="$OUT/oci"
umoci init --layout "$L"
umoci new --image "$L:server"
umoci raw add-layer --image "$L:server" "$OUT/base.tar"
umoci raw add-layer --image "$L:server" "$OUT/www.tar"
umoci config --image "$L:server" --config.env PATH=/bin --config.exposedports 8080/tcp \
  --config.entrypoint /bin/sh \
  --config.cmd -c --config.cmd "httpd -p 127.0.0.1:8080 -h /www; until [ \"\$(cat /tmp/hits 2>/dev/null)\" = $HITS ]; do sleep 0.2; done; echo server: $HITS hits served, bye"
skopeo copy --quiet --dest-tls-verify=false "oci:$L:server" "docker://127.0.0.1:$PORT/demo/server:1.0"

step "building the counter as a signed ACI"
mkdir -p "$OUT/counter/rootfs/bin"
cp /bin/busybox "$OUT/counter/rootfs/bin/busybox"
for applet in sh wget sleep echo; do ln -s busybox "$OUT/counter/rootfs/bin/$applet"; done
cat > "$OUT/counter/manifest" <<JSON
{
  "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "demo.rkt.local/counter",
  "labels": [{"name": "version", "value": "1.0.0"}, {"name": "os", "value": "linux"},
             {"name": "arch", "value": "amd64"}],
  "app": {"exec": ["/bin/sh", "-c",
    "i=0; while [ \$i -lt $HITS ]; do r=\$(wget -q -O - http://127.0.0.1:8080/cgi-bin/hit 2>/dev/null) || { sleep 0.2; continue; }; i=\$((i + 1)); echo \"counter \$i: \$r\"; sleep 1; done"],
    "user": "0", "group": "0"}
}
JSON
"$RKT" image build --overwrite --compression=gzip "$OUT/counter" "$OUT/counter.aci"
export GNUPGHOME="$OUT/gnupg"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-gen-key "rkt demo pod <demo@rkt.local>" ed25519 sign never 2>/dev/null
gpg --batch --quiet --armor --export > "$OUT/demo-key.asc"
gpg --batch --quiet --armor --detach-sign -o "$OUT/counter.aci.asc" "$OUT/counter.aci"
gpgconf --homedir "$GNUPGHOME" --kill all 2>/dev/null || true
"$RKT" trust --prefix=demo.rkt.local/counter --skip-fingerprint-review "$OUT/demo-key.asc"

step "fetching the counter ACI (signature verified)"
"$RKT" fetch "$OUT/counter.aci"

step "pulling the server from the registry (layers stored once, by digest)"
"$RKT" fetch --insecure-options=image,http "docker://127.0.0.1:$PORT/demo/server:1.0"
"$RKT" image list

step "running one pod: the Docker server and the signed ACI counter, over the pod's localhost"
"$RKT" run --net=none --insecure-options=image,http \
  "docker://127.0.0.1:$PORT/demo/server:1.0" --name=server \
  demo.rkt.local/counter:1.0.0 --name=counter
