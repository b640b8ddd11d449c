#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kubectl, etcd, helm, promtool, syft, the registry, crane and gitops-verdict from the modules pinned under hack/tools/*/go.mod (the
# single place versions are pinned), caches them keyed by module version and the module directory's
# files (go.mod, go.sum, and gitops-verdict's own source), and links them into
# .testground/bin. Prints that directory. Needs only `go` and the module proxy.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${EGAIN_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/egain-token-operator/tools}
bin="$repo/.testground/bin"
mkdir -p "$cache" "$bin"
# One build at a time per cache: two checkouts building the same tool at once
# would each remove the other's half-built directory.
exec 9>"$cache/.lock"
flock 9

# [tags=TAGS] build MODULE_DIR MAIN_MODULE LDFLAGS PACKAGE...
build() {
  local dir=$here/$1 module=$2 ldflags=$3
  shift 3
  local version key target output
  version=$(cd "$dir" && go list -m -f '{{.Version}}' "$module")
  key=$(cat "$dir"/* | sha256sum | cut -c1-8)
  target="$cache/$(basename "$dir")-$version-$key"
  # One package builds to a file named after the module dir (etcd's main
  # package path ends in /v3); several build into the directory.
  output="$target.partial/"
  [[ $# -eq 1 ]] && output="$target.partial/$(basename "$dir")"
  if [[ ! -f "$target/.complete" ]]; then
    echo "building $(basename "$dir") $version (first time only)..." >&2
    local started=$SECONDS
    rm -rf "$target.partial"
    mkdir -p "$target.partial"
    (cd "$dir" && CGO_ENABLED=0 go build -trimpath -tags "${tags:-}" -ldflags "$ldflags" -o "$output" "$@")
    touch "$target.partial/.complete"
    rm -rf "$target"
    mv "$target.partial" "$target"
    echo "built $(basename "$dir") $version in $((SECONDS - started))s" >&2
  fi
  local binary
  for binary in "$target"/*; do
    ln -sfn "$binary" "$bin/$(basename "$binary")"
  done
}

k8s_version=$(cd "$here/kubernetes" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
k8s_minor=$(echo "$k8s_version" | cut -d. -f2)
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean"
done
build kubernetes k8s.io/kubernetes "$k8s_ldflags" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl \
  k8s.io/kubernetes/cmd/kubelet

build etcd go.etcd.io/etcd/server/v3 "-s -w" go.etcd.io/etcd/server/v3

helm_version=$(cd "$here/helm" && go list -m -f '{{.Version}}' helm.sh/helm/v4)
build helm helm.sh/helm/v4 "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version" \
  helm.sh/helm/v4/cmd/helm

# promtool only checks rule files: remove_all_sd leaves out the service
# discovery plugins (cloud SDKs) it would otherwise link in.
prometheus_version=$(cd "$here/promtool" && go list -m -f '{{.Version}}' github.com/prometheus/prometheus)
tags=remove_all_sd build promtool github.com/prometheus/prometheus \
  "-s -w -X github.com/prometheus/common/version.Version=$prometheus_version" \
  github.com/prometheus/prometheus/cmd/promtool

build syft github.com/anchore/syft "-s -w -X main.version=$(cd "$here/syft" && go list -m -f '{{.Version}}' github.com/anchore/syft)" github.com/anchore/syft/cmd/syft

# The test ground's OCI registry (with TLS and htpasswd authentication) and
# crane, which pushes the image to it (hack/publish.sh).
build registry github.com/distribution/distribution/v3 \
  "-s -w -X github.com/distribution/distribution/v3/version.version=$(cd "$here/registry" && go list -m -f '{{.Version}}' github.com/distribution/distribution/v3)" \
  github.com/distribution/distribution/v3/cmd/registry
build crane github.com/google/go-containerregistry "-s -w" \
  github.com/google/go-containerregistry/cmd/crane

# What Flux's kstatus and Argo CD's Lua make of an object (the e2e tests of
# docs/gitops.md): a main package of the project's own, versioned by the kstatus
# library it links.
build gitops-verdict sigs.k8s.io/cli-utils "-s -w" .

echo "$bin"
