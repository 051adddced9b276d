#!/usr/bin/env bash
# Builds the pinned e2e test toolchain (pyroscope, jaeger, etcd, Kubernetes,
# helm, kind, crictl, coredns) from Go modules into a cache outside the repo.
#
#   build.sh [TOOL|GROUP ...]   build (default: all); last stdout line = tool dir
#   build.sh --dir              print the tool dir only, build nothing
#   build.sh --list             print tools and groups
#   build.sh --force TOOL ...   rebuild even if already cached
#   build.sh --sync MODULE ...  rewrite modules/MODULE/go.mod+go.sum from versions.env
#
# Cache: ${SPANPROF_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/span-profiling/toolchain}
#   <cache>/<tool>-<version>/<tool>   one build per tool and version
#   <cache>/bin-<hash>/<tool>         symlinks; <hash> covers versions.env and modules/
#   <cache>/bin -> bin-<hash>         convenience link to the last one made
# See README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODULES="$HERE/modules"
VERSIONS_FILE="$HERE/versions.env"
CACHE="${SPANPROF_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/span-profiling/toolchain}"

# shellcheck source=versions.env
source "$VERSIONS_FILE"
# shellcheck source=../lib/progress.sh
source "$HERE/../lib/progress.sh"

# ---------------------------------------------------------------- tables ----
# tool  wrapper-module  package  version-variable
TOOLS_TABLE="
pyroscope               pyroscope   github.com/grafana/pyroscope/cmd/pyroscope          PYROSCOPE_VERSION
jaeger                  jaeger      github.com/jaegertracing/jaeger/cmd/jaeger          JAEGER_VERSION
etcd                    etcd        go.etcd.io/etcd/server/v3                           ETCD_VERSION
etcdctl                 etcd        go.etcd.io/etcd/etcdctl/v3                          ETCD_VERSION
kube-apiserver          kubernetes  k8s.io/kubernetes/cmd/kube-apiserver                KUBERNETES_VERSION
kubectl                 kubernetes  k8s.io/kubernetes/cmd/kubectl                       KUBERNETES_VERSION
kube-controller-manager kubernetes  k8s.io/kubernetes/cmd/kube-controller-manager       KUBERNETES_VERSION
kube-scheduler          kubernetes  k8s.io/kubernetes/cmd/kube-scheduler                KUBERNETES_VERSION
kubelet                 kubernetes  k8s.io/kubernetes/cmd/kubelet                       KUBERNETES_VERSION
kubeadm                 kubernetes  k8s.io/kubernetes/cmd/kubeadm                       KUBERNETES_VERSION
kube-proxy              kubernetes  k8s.io/kubernetes/cmd/kube-proxy                    KUBERNETES_VERSION
helm                    helm        helm.sh/helm/v3/cmd/helm                            HELM_VERSION
kind                    kind        sigs.k8s.io/kind                                    KIND_VERSION
crictl                  crictl      sigs.k8s.io/cri-tools/cmd/crictl                    CRICTL_VERSION
coredns                 coredns     github.com/coredns/coredns                          COREDNS_VERSION
"

# wrapper-module  upstream-module(s, comma separated)  version-variable
MODULES_TABLE="
pyroscope   github.com/grafana/pyroscope                           PYROSCOPE_VERSION
jaeger      github.com/jaegertracing/jaeger                        JAEGER_VERSION
etcd        go.etcd.io/etcd/server/v3,go.etcd.io/etcd/etcdctl/v3   ETCD_VERSION
kubernetes  k8s.io/kubernetes                                      KUBERNETES_VERSION
helm        helm.sh/helm/v3                                        HELM_VERSION
kind        sigs.k8s.io/kind                                       KIND_VERSION
crictl      sigs.k8s.io/cri-tools                                  CRICTL_VERSION
coredns     github.com/coredns/coredns                             COREDNS_VERSION
"

K8S_ALL="kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kubeadm kube-proxy"
declare -A GROUPS_TABLE=(
  [all]="pyroscope jaeger etcd etcdctl $K8S_ALL helm kind crictl coredns"
  [observability]="pyroscope jaeger"
  [apiserver]="etcd kube-apiserver kubectl"
  [kubernetes]="$K8S_ALL"
  # Everything a kind cluster needs when no image can be pulled: kind itself,
  # and the binaries that go into a locally assembled node image.
  [cluster]="kind kubectl etcd etcdctl $K8S_ALL crictl coredns"
)

# Extra -ldflags per tool (on top of -s -w). $V is the tool's version.
ldflags_for() {
  local tool=$1 V=$2
  case $tool in
    pyroscope)
      echo "-X github.com/grafana/pyroscope/pkg/util/build.Version=${V#v} -X github.com/grafana/pyroscope/pkg/util/build.Branch=HEAD" ;;
    jaeger)
      echo "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=$V" ;;
    kube-*|kubectl|kubelet|kubeadm)
      local mm=${V#v} major minor
      major=${mm%%.*}; minor=${mm#*.}; minor=${minor%%.*}
      local f p
      for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        f+=" -X $p.gitVersion=$V -X $p.gitMajor=$major -X $p.gitMinor=$minor"
        f+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
      done
      echo "$f" ;;
    helm) # as helm's Makefile: the Kubernetes version it assumes is that of its client-go
      local cg kmin
      cg=$(awk '$1 == "k8s.io/client-go" {print $2}' "$MODULES/helm/go.mod" 2>/dev/null)
      kmin=${cg#v0.}; kmin=${kmin%%.*}
      echo "-X helm.sh/helm/v3/internal/version.version=$V -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
        "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kmin" \
        "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kmin" ;;
    crictl)
      echo "-X sigs.k8s.io/cri-tools/pkg/version.Version=${V#v}" ;;
    *) echo "" ;;
  esac
}

# ---------------------------------------------------------------- helpers ---
log() { printf '%s\n' "$*" >&2; }
die() { log "build.sh: $*"; exit 1; }

tool_row() { # tool -> "tool module pkg var" or fail
  local row
  row=$(awk -v t="$1" '$1 == t' <<<"$TOOLS_TABLE")
  [[ -n $row ]] || die "unknown tool or group: $1 (try --list)"
  echo "$row"
}
module_row() {
  local row
  row=$(awk -v m="$1" '$1 == m' <<<"$MODULES_TABLE")
  [[ -n $row ]] || die "unknown module: $1 (modules: $(awk 'NF{printf "%s ", $1}' <<<"$MODULES_TABLE"))"
  echo "$row"
}
all_tools() { awk 'NF{print $1}' <<<"$TOOLS_TABLE"; }

hash_stdin() { sha256sum | cut -c1-16; }

# Everything that determines a tool's binary, besides the Go toolchain.
tool_stamp() {
  local tool=$1 module=$2 pkg=$3 version=$4
  {
    echo "$tool $pkg $version"
    ldflags_for "$tool" "$version"
    cat "$MODULES/$module/go.mod" "$MODULES/$module/go.sum" "$MODULES/$module"/*.go 2>/dev/null || true
  } | hash_stdin
}

# The bin dir depends on every version and every wrapper module.
bin_dir() {
  local h
  h=$({
    cat "$VERSIONS_FILE"
    local t
    for t in $(all_tools); do
      read -r _ module pkg var <<<"$(tool_row "$t")"
      echo "$t $(tool_stamp "$t" "$module" "$pkg" "${!var}")"
    done
  } | hash_stdin)
  echo "$CACHE/bin-$h"
}

go_env() {
  export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false"
}

# Fails if the wrapper module does not require the versions.env versions.
check_module() {
  local module=$1 upstreams var have m
  read -r _ upstreams var <<<"$(module_row "$module")"
  for m in ${upstreams//,/ }; do
    have=$(cd "$MODULES/$module" && go mod edit -json | jq -r --arg m "$m" '.Require[] | select(.Path == $m) | .Version')
    [[ $have == "${!var}" ]] ||
      die "modules/$module/go.mod requires $m ${have:-<none>} but versions.env says $var=${!var}; run: $0 --sync $module"
  done
}

# Whether a tool is built at its current version and stamp.
is_built() {
  local tool=$1 module pkg var version dest
  read -r _ module pkg var <<<"$(tool_row "$tool")"
  version=${!var}
  dest="$CACHE/$tool-$version"
  [[ -x $dest/$tool && -f $dest/.stamp && $(<"$dest/.stamp") == "$(tool_stamp "$tool" "$module" "$pkg" "$version")" ]]
}

go_build() { # module-dir ldflags output package
  cd "$1" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags="$2" -o "$3" "$4"
}

build_tool() {
  local tool=$1 force=$2 module pkg var version stamp dest tmp ldflags
  read -r _ module pkg var <<<"$(tool_row "$tool")"
  version=${!var}
  stamp=$(tool_stamp "$tool" "$module" "$pkg" "$version")
  dest="$CACHE/$tool-$version"
  if [[ $force != 1 ]] && is_built "$tool"; then
    return 0
  fi
  check_module "$module"
  tmp=$(mktemp -d "$CACHE/.tmp-$tool-XXXXXX")
  chmod 755 "$tmp"
  TMP_DIRS+=("$tmp")
  ldflags="-s -w $(ldflags_for "$tool" "$version")"
  # Go's own output (thousands of "go: downloading" lines on a cold cache) goes to the step's log.
  step_run "toolchain/$tool-$version" "building $tool $version" "$CACHE/logs/$tool.log" \
    go_build "$MODULES/$module" "$ldflags" "$tmp/$tool" "$pkg" || die "building $tool $version failed"
  echo "$stamp" >"$tmp/.stamp"
  # Only complete builds are moved into place (a rebuild leaves no dir for a moment).
  if [[ -e $dest ]]; then
    local old="$CACHE/.old-$tool-$$"
    mv -T "$dest" "$old"
    mv -T "$tmp" "$dest"
    rm -rf "$old"
  else
    mv -T "$tmp" "$dest"
  fi
}

# Link every tool that is built at its current version and stamp into the bin dir.
link_bin() {
  local dir=$1 t module pkg var version dest tmp
  mkdir -p "$dir"
  for t in $(all_tools); do
    read -r _ module pkg var <<<"$(tool_row "$t")"
    version=${!var}
    dest="$CACHE/$t-$version"
    if [[ -x $dest/$t && -f $dest/.stamp && $(<"$dest/.stamp") == "$(tool_stamp "$t" "$module" "$pkg" "$version")" ]]; then
      ln -sfn "../$t-$version/$t" "$dir/$t"
    fi
  done
  tmp="$CACHE/.bin-link-$$"
  ln -sfn "$(basename "$dir")" "$tmp"
  mv -T "$tmp" "$CACHE/bin"
}

# Adds upstream's go.sum lines to the wrapper's (the checksum database
# lacks some of pyroscope's pseudo-versions; upstream's go.sum vouches for them).
# Copies upstream's module replaces; local-path replaces are mapped by
# local_replace() ("-" = drop it). Then tidies.
sync_module() {
  local module=$1 upstreams var version m info gomod dir dirs=()
  read -r _ upstreams var <<<"$(module_row "$module")"
  version=${!var}
  cd "$MODULES/$module"
  export GOFLAGS="-mod=mod -buildvcs=false"
  # Modules that the checksum database does not know (lookups answer 404): their
  # go.sum lines are recorded on first download, then committed and checked.
  case $module in
    crictl) export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}sigs.k8s.io/cri-tools" ;;
  esac
  touch go.sum
  for m in ${upstreams//,/ }; do
    log "sync $module: $m@$version"
    info=$(go mod download -json "$m@$version") || die "$(jq -r '.Error // empty' <<<"$info" 2>/dev/null || true)"
    gomod=$(jq -r .GoMod <<<"$info")
    dir=$(jq -r .Dir <<<"$info")
    dirs+=("$dir")
    go mod edit -require="$m@$version"
    # The wrapper needs at least upstream's go version.
    local upgo mygo
    upgo=$(go mod edit -json "$gomod" | jq -r '.Go // "1.0"')
    mygo=$(go mod edit -json | jq -r '.Go // "1.0"')
    if [[ $(printf '%s\n%s\n' "$upgo" "$mygo" | sort -V | tail -1) != "$mygo" ]]; then
      go mod edit -go="$upgo"
    fi
    # Upstream replaces.
    local old oldv new newv
    while IFS='|' read -r old oldv new newv; do
      [[ -n $old ]] || continue
      [[ -n $oldv ]] && old="$old@$oldv"
      if [[ $new == */FORBIDDEN_DEPENDENCY ]]; then
        continue # etcd's guard against bad imports
      elif [[ $new == ./* || $new == ../* ]]; then
        local target
        target=$(local_replace "$module" "${old%@*}" "$gomod") || die "no rule for local replace $old => $new in $m; add one to local_replace()"
        [[ $target == - ]] && continue
        new=$target
      elif [[ -n $newv ]]; then
        new="$new@$newv"
      fi
      go mod edit -replace="$old=$new"
    done < <(go mod edit -json "$gomod" | jq -r '.Replace // [] | .[] | [.Old.Path, (.Old.Version // ""), .New.Path, (.New.Version // "")] | join("|")')
  done
  for dir in "${dirs[@]}"; do
    [[ -f $dir/go.sum ]] && cat "$dir/go.sum" >>go.sum
  done
  sort -u -o go.sum go.sum
  nice -n 10 go mod tidy
  log "sync $module: done"
}

# Target of an upstream replace that points into upstream's own tree.
local_replace() {
  local module=$1 path=$2 upstream_gomod=$3
  case "$module:$path" in
    pyroscope:github.com/grafana/pyroscope/api) echo "$path@$PYROSCOPE_API_VERSION" ;;
    kubernetes:k8s.io/*) # staging module: published as v0.<minor>.<patch>
      echo "$path@v0.${KUBERNETES_VERSION#v1.}" ;;
    etcd:go.etcd.io/etcd/*) # sibling modules of the same release, at the version upstream requires
      local v
      v=$(go mod edit -json "$upstream_gomod" | jq -r --arg p "$path" '.Require[] | select(.Path == $p) | .Version')
      [[ -n $v ]] && echo "$path@$v" ;;
    *) return 1 ;;
  esac
}

# ------------------------------------------------------------------- main ---
# The whole script is parsed before anything runs (main is called on the last
# line), so editing or updating this file during a build is harmless.
main() {
  TMP_DIRS=()
  # shellcheck disable=SC2317 # called by the trap
  cleanup() { local d; step_kill; for d in "${TMP_DIRS[@]}"; do rm -rf "$d"; done; }
  trap cleanup EXIT
  trap 'exit 130' INT TERM

  force=0
  want=()
  while (($#)); do
    case $1 in
      --dir) bin_dir; exit 0 ;;
      --list)
        echo "tools:"; all_tools | while read -r t; do
          read -r _ _ _ var <<<"$(tool_row "$t")"; echo "  $t ${!var}"; done
        echo "groups:"; for g in "${!GROUPS_TABLE[@]}"; do echo "  $g: ${GROUPS_TABLE[$g]}"; done
        exit 0 ;;
      --force) force=1 ;;
      --sync)
        shift; (($#)) || die "--sync needs module names"
        for m in "$@"; do (sync_module "$m"); done
        exit 0 ;;
      -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
      -*) die "unknown option $1" ;;
      *)
        if [[ -n ${GROUPS_TABLE[$1]+x} ]]; then read -ra g <<<"${GROUPS_TABLE[$1]}"; want+=("${g[@]}"); else tool_row "$1" >/dev/null; want+=("$1"); fi ;;
    esac
    shift
  done
  ((${#want[@]})) || read -ra want <<<"${GROUPS_TABLE[all]}"

  command -v go >/dev/null || die "go is not installed"
  command -v jq >/dev/null || die "jq is not installed"
  mkdir -p "$CACHE"
  go_env

  # One builder at a time per cache (another build.sh waits here).
  exec 9>"$CACHE/.lock"
  if ! flock -n 9; then
    log "waiting for another build.sh using $CACHE..."
    flock 9
  fi
  rm -rf "$CACHE"/.tmp-* "$CACHE"/.old-* "$CACHE"/.bin-link-*

  declare -A seen=()
  local todo=()
  for t in "${want[@]}"; do
    [[ -n ${seen[$t]+x} ]] && continue
    seen[$t]=1
    if [[ $force == 1 ]] || ! is_built "$t"; then todo+=("$t"); fi
  done
  STEP_TOTAL=${#todo[@]}
  ((STEP_TOTAL == 0)) || log "toolchain: building ${todo[*]} from Go modules (once; cached in $CACHE)"
  for t in "${todo[@]}"; do build_tool "$t" "$force"; done

  dir=$(bin_dir)
  link_bin "$dir"
  for t in "${want[@]}"; do [[ -x $dir/$t ]] || die "$t missing from $dir"; done
  echo "$dir"
}

main "$@"; exit $?
