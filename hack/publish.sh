#!/usr/bin/env bash
# Publishes the operator to an OCI registry: the image `make image` builds, as
# $REGISTRY/egain-token-operator:<version>, and the chart as an OCI artifact,
# oci://$REGISTRY/charts/egain-token-operator:<version>. One version for both:
# pyproject.toml's, which the chart's `version` and `appVersion` must equal.
# Prints the image's digest last (install pinned to it with
# `--set image.digest=<digest>`).
#
#   hack/publish.sh REGISTRY        # e.g. registry.example.com/platform
#
# Credentials are the ones docker, crane and helm share (`docker login`,
# `crane auth login`, or $DOCKER_CONFIG/config.json); a registry under a
# private CA is trusted through SSL_CERT_FILE. crane and helm are the pinned
# builds of hack/tools.
set -euo pipefail

die() { echo "publish: $*" >&2; exit 1; }

[[ $# -eq 1 && -n $1 ]] || die "usage: $0 REGISTRY (for example registry.example.com/platform)"
registry=${1%/}
repo=$(cd "$(dirname "$0")/.." && pwd)
chart=$repo/charts/egain-token-operator

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/pyproject.toml" | head -n1)
chart_version=$(sed -n 's/^version: *\(.*\)$/\1/p' "$chart/Chart.yaml")
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$chart/Chart.yaml")
[[ -n $version ]] || die "no version in pyproject.toml"
[[ $chart_version == "$version" && $app_version == "$version" ]] ||
  die "pyproject.toml says $version, Chart.yaml version $chart_version and appVersion $app_version: make them one"

bin=$("$repo/hack/tools/build.sh")
archive=$("$repo/hack/image/build.sh" --list | awk -F'\t' '$1 == "operator" { print $3 }')
[[ -f $archive ]] || die "hack/image/build.sh wrote no operator archive"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# The archive is an OCI layout in a tar; crane pushes the layout.
mkdir "$scratch/layout"
tar -xf "$archive" -C "$scratch/layout"
image=$registry/egain-token-operator
"$bin/crane" push "$scratch/layout" "$image:$version" --image-refs "$scratch/pushed" >/dev/null
pushed=$(cat "$scratch/pushed")
digest=${pushed##*@}
[[ $digest == sha256:* ]] || die "crane printed no digest for $image:$version"
echo "image $image:$version ($digest)" >&2

"$bin/helm" package "$chart" --destination "$scratch" >/dev/null
"$bin/helm" push "$scratch/egain-token-operator-$version.tgz" "oci://$registry/charts" >&2
echo "chart oci://$registry/charts/egain-token-operator --version $version" >&2
echo "$digest"
