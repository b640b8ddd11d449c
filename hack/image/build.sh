#!/usr/bin/env bash
# Builds the operator image from the Dockerfile without a Docker engine, plus
# the two images the test ground's kubelet node needs beside it:
#
#   base      Debian bookworm with python3, pip and venv, made by mmdebstrap; the
#             Dockerfile's PYTHON_IMAGE (its builder stage) here, and the
#             consumer image of the tests (sh, cat, date, sleep);
#   runtime   Debian bookworm with python3 and ca-certificates only, without
#             the parts of Python's standard library a service never imports;
#             the Dockerfile's RUNTIME_IMAGE (not needed by the node);
#   pause     the Pod sandbox image: a static Go binary (pause/) on scratch;
#   operator  `buildah bud` of the Dockerfile on base and runtime.
#
# Each image is cached, as an OCI archive, under the hash of what it is built
# from: base under this script (which holds its package list), pause under its
# source, operator under the Dockerfile, the files .dockerignore lets into the
# build context, the bases' key and the labels. A run with nothing changed
# builds nothing.
# buildah keeps its storage (vfs) under the cache too, never in
# /var/lib/containers. The operator archive is also linked into
# dist/egain-token-operator-<tag>.oci.tar, for `skopeo copy oci-archive:...`
# (or `crane push` of the OCI layout it unpacks to), and its SBOM (SPDX JSON,
# which syft writes from the archive when the image is built) into
# dist/egain-token-operator-<tag>.spdx.json.
#
# Every archive can be imported as it is with `ctr -n k8s.io images import`,
# which names the image by the reference printed here.
#
# Usage: hack/image/build.sh [--list]
# Progress goes to stderr. The last line on stdout is the operator image
# reference, as a Pod spec writes it. With --list, one line per image comes
# first: KIND<tab>REFERENCE<tab>ARCHIVE, for base, pause and operator.
#
# Needs root (mmdebstrap and buildah build as root here), Debian's apt, and Go
# for the pause binary and syft (hack/tools/build.sh); installs buildah and
# mmdebstrap when they are missing.
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${EGAIN_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/egain-token-operator}/images
dist=$repo/dist

list=false
case ${1:-} in
  '') ;;
  --list) list=true ;;
  *) echo "usage: $0 [--list]" >&2; exit 2 ;;
esac

# The base image's recipe. Packages are Debian bookworm's (with its updates and
# security fixes) of the day it is built; python-is-python3 provides the
# `python` the Dockerfile calls, passwd its groupadd and useradd.
debian_suite=bookworm
debian_sources=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)
base_packages=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,passwd
# The runtime's: the same Python (the operator's virtual environment links to
# it) and the CA bundle; passwd for the Dockerfile's useradd. Removed from its
# standard library once installed (dpkg's path-exclude would break the
# packages' byte-compilation): the test suite and pydoc's topics (help() only).
runtime_packages=python3,python-is-python3,ca-certificates,passwd
runtime_removed=(usr/lib/python3.11/test usr/lib/python3.11/pydoc_data)
base_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "image: $*" >&2; }
die() { say "$*"; exit 1; }

sha() { sha256sum | cut -c1-64; }

# The version in pyproject.toml: the operator tag is <version>-<key>, and the
# image's org.opencontainers.image.version label.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/pyproject.toml" | head -n1)
[[ -n $version ]] || die "no version in $repo/pyproject.toml"

# The build context as .dockerignore selects it. It is an allow-list ("*", then
# "!path" entries, then "**/name" exclusions); anything else would need a real
# .dockerignore matcher here, so it is refused rather than hashed wrongly.
context_files() {
  local line includes=() prunes=()
  while IFS= read -r line || [[ -n $line ]]; do
    case $line in
      '' | '#'*) ;;
      '*') ;;
      '!'*) includes+=("${line#!}") ;;
      '**/'*) prunes+=(-name "${line#'**/'}" -prune -o) ;;
      *) die ".dockerignore line '$line' is not understood by $0; teach context_files" ;;
    esac
  done <"$repo/.dockerignore"
  [[ ${#includes[@]} -gt 0 ]] || die ".dockerignore lets nothing into the build context"
  grep -qx '\*' "$repo/.dockerignore" || die ".dockerignore must start from '*' (an allow-list)"
  (cd "$repo" && find "${includes[@]%/}" "${prunes[@]}" -type f -print) | LC_ALL=C sort
}

# The org.opencontainers.image.revision label: the commit that last changed
# the Dockerfile, .dockerignore or a file of the build context, with "-dirty"
# when the work tree changes any of them. It moves only when they do, so it
# does not rebuild the image on every commit; "" outside a git checkout.
context_paths=(Dockerfile .dockerignore)
while IFS= read -r line; do
  [[ $line == '!'* ]] && context_paths+=("${line#!}")
done <"$repo/.dockerignore"
revision=
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
  revision=$(git -C "$repo" log -1 --format=%H -- "${context_paths[@]}")
  if [[ -n $(git -C "$repo" status --porcelain -- "${context_paths[@]}") ]]; then
    revision+=-dirty
  fi
fi
# org.opencontainers.image.source: the Source URL of pyproject.toml's
# [project.urls], when it records one.
source_url=$(sed -n 's/^Source = "\(.*\)"$/\1/p' "$repo/pyproject.toml" | head -n1)

base_key=$(sha <"$here/build.sh")
pause_key=$(cd "$here/pause" && cat go.mod ./*.go | sha)
operator_key=$(
  cd "$repo"
  {
    echo "base $base_key"
    echo "labels $version $revision $source_url"
    sha256sum Dockerfile .dockerignore
    context_files | tr '\n' '\0' | xargs -0 -r sha256sum --
  } | sha
)

base_ref=localhost/egain-token-operator-base:$debian_suite-${base_key:0:12}
runtime_ref=localhost/egain-token-operator-runtime:$debian_suite-${base_key:0:12}
pause_ref=localhost/egain-token-operator-pause:${pause_key:0:12}
operator_tag=$version-${operator_key:0:12}
operator_ref=localhost/egain-token-operator:$operator_tag

base_archive=$cache/base-$debian_suite-${base_key:0:12}.oci.tar
runtime_archive=$cache/runtime-$debian_suite-${base_key:0:12}.oci.tar
pause_archive=$cache/pause-${pause_key:0:12}.oci.tar
operator_archive=$cache/operator-$operator_tag.oci.tar
operator_sbom=$cache/operator-$operator_tag.spdx.json
dist_archive=$dist/egain-token-operator-$operator_tag.oci.tar
dist_sbom=$dist/egain-token-operator-$operator_tag.spdx.json

mkdir -p "$cache"
# One build at a time per cache: concurrent test sessions wait for each other.
exec 9>"$cache/.lock"
if ! flock -n 9; then
  say "waiting for another build using $cache..."
  flock 9
fi

buildah_() {
  buildah --root "$cache/buildah/root" --runroot "$cache/buildah/runroot" \
    --storage-driver vfs "$@"
}

prepared=false
work=
cleanup() {
  if [[ -n $work ]]; then
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# Called before the first thing that builds: a run from the cache needs none
# of it.
prepare() {
  if $prepared; then
    return
  fi
  prepared=true
  [[ $EUID -eq 0 ]] || die "building images needs root (mmdebstrap and buildah run as root here)"
  local package missing=()
  for package in buildah mmdebstrap; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    say "installing ${missing[*]}..."
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  fi
  export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
  work=$(mktemp -d "$cache/work.XXXXXX")
  # Working containers an interrupted run left behind (the lock is ours).
  buildah_ rm --all >/dev/null
}

# push IMAGE ARCHIVE: write the OCI archive atomically, named IMAGE inside.
push() {
  rm -f "$2.partial"
  buildah_ push --quiet "$1" "oci-archive:$2.partial:$1" >&2
  mv "$2.partial" "$2"
}

# prune PREFIX KEEP: keep the newest archives of one kind, delete the others.
prune() {
  local old
  while IFS= read -r old; do
    rm -f "$old"
  done < <(find "$cache" -maxdepth 1 -name "$1*.oci.tar" -printf '%T@ %p\n' |
    sort -rn | tail -n +"$(($2 + 1))" | cut -d' ' -f2-)
}

# build_debian REF ARCHIVE PACKAGES [REMOVED...]: a Debian image by mmdebstrap,
# without the directories REMOVED (relative to its root).
build_debian() {
  local ref=$1 archive=$2 packages=$3 removed
  shift 3
  say "building the image $ref (first time only)..."
  local started=$SECONDS container
  # mmdebstrap copies this machine's /etc/resolv.conf and /etc/hostname in;
  # a container runtime mounts its own over these, and over /etc/hosts.
  local customize
  # shellcheck disable=SC2016 # $1 is the hook's argument, the root directory
  customize='for f in hostname resolv.conf; do : >"$1/etc/$f"; chmod 0644 "$1/etc/$f"; done'
  # shellcheck disable=SC2016
  customize+='; printf "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" >"$1/etc/hosts"'
  for removed in "$@"; do
    customize+="; rm -rf \"\$1/$removed\""
  done
  mmdebstrap --variant=essential \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook="$customize" \
    "$debian_suite" "$work/rootfs.tar" "${debian_sources[@]}" >&2
  # The runtime mounts its own /dev: keep the directory, not mmdebstrap's nodes.
  tar --delete --wildcards -f "$work/rootfs.tar" './dev/?*'
  container=$(buildah_ from scratch)
  buildah_ add "$container" "$work/rootfs.tar" / >/dev/null
  buildah_ config --env "PATH=$base_path" --env LANG=C.UTF-8 --cmd '["/bin/sh"]' \
    --label "org.opencontainers.image.title=${ref%%:*}" \
    --label "org.opencontainers.image.description=Debian $debian_suite with $packages" \
    "$container"
  buildah_ commit --quiet --rm "$container" "$ref" >/dev/null
  rm -f "$work/rootfs.tar"
  push "$ref" "$archive"
  say "built $ref in $((SECONDS - started))s"
}

build_pause() {
  say "building the pause image $pause_ref (first time only)..."
  local started=$SECONDS container
  command -v go >/dev/null || die "building the pause image needs Go (1.19 or later)"
  (cd "$here/pause" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/pause" .)
  container=$(buildah_ from scratch)
  buildah_ copy --quiet "$container" "$work/pause" /pause >/dev/null
  buildah_ config --entrypoint '["/pause"]' --user 65535:65535 \
    --label org.opencontainers.image.title=egain-token-operator-pause "$container"
  buildah_ commit --quiet --rm "$container" "$pause_ref" >/dev/null
  push "$pause_ref" "$pause_archive"
  buildah_ rmi "$pause_ref" >/dev/null
  prune pause- 3
  say "built the pause image in $((SECONDS - started))s"
}

build_operator() {
  say "building the operator image $operator_ref..."
  local started=$SECONDS image ref archive
  # The bases are kept in buildah's storage; reload one if that was wiped.
  for ref in "$base_ref" "$runtime_ref"; do
    archive=$base_archive
    [[ $ref == "$runtime_ref" ]] && archive=$runtime_archive
    if ! buildah_ inspect --type image "$ref" >/dev/null 2>&1; then
      image=$(buildah_ pull --quiet "oci-archive:$archive")
      buildah_ tag "$image" "$ref"
    fi
  done
  # pip in the build reaches PyPI trusting what this machine trusts (its
  # bundle may hold a proxy's CA): the bundle is mounted read-only over the
  # base's, which Debian's pip uses; verification stays on. The mount point
  # exists in the base, so nothing of it ends up in the image.
  local ca=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
  local mounts=()
  if [[ -f $ca ]]; then
    mounts+=(-v "$ca:/etc/ssl/certs/ca-certificates.crt:ro")
  fi
  buildah_ bud --isolation chroot --pull-never --format oci \
    --build-arg "PYTHON_IMAGE=$base_ref" --build-arg "RUNTIME_IMAGE=$runtime_ref" \
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
    --build-arg "SOURCE=$source_url" "${mounts[@]}" \
    --tag "$operator_ref" --file "$repo/Dockerfile" "$repo" >&2
  push "$operator_ref" "$operator_archive"
  buildah_ rmi "$operator_ref" >/dev/null
  prune operator- 3
  # Bases other than the current ones are only in the archives now.
  buildah_ images --format '{{.Name}}:{{.Tag}}' | while IFS= read -r image; do
    case $image in
      "$base_ref" | "$runtime_ref") ;;
      localhost/egain-token-operator-base:* | localhost/egain-token-operator-runtime:*)
        buildah_ rmi "$image" >/dev/null ;;
    esac
  done
  say "built the operator image in $((SECONDS - started))s"
}

# build_sbom: the operator image's SBOM, from its archive (Debian and Python
# packages, with versions). syft's update check stays off: it would call out.
build_sbom() {
  say "writing the SBOM of $operator_ref..."
  local bin
  bin=$("$repo/hack/tools/build.sh")
  SYFT_CHECK_FOR_APP_UPDATE=false "$bin/syft" scan --quiet \
    --source-name egain-token-operator --source-version "$operator_tag" \
    --output "spdx-json=$operator_sbom.partial" "oci-archive:$operator_archive"
  mv "$operator_sbom.partial" "$operator_sbom"
  find "$cache" -maxdepth 1 -name 'operator-*.spdx.json' | while IFS= read -r old; do
    [[ -f ${old%.spdx.json}.oci.tar ]] || rm -f "$old"
  done
}

if [[ ! -f $base_archive ]]; then
  prepare
  build_debian "$base_ref" "$base_archive" "$base_packages"
  prune base- 3
fi
if [[ ! -f $runtime_archive ]]; then
  prepare
  build_debian "$runtime_ref" "$runtime_archive" "$runtime_packages" "${runtime_removed[@]}"
  prune runtime- 3
fi
[[ -f $pause_archive ]] || { prepare; build_pause; }
[[ -f $operator_archive ]] || { prepare; build_operator; }
[[ -f $operator_sbom ]] || build_sbom

# dist/ holds the current operator archive and its SBOM only.
mkdir -p "$dist"
for pair in "$operator_archive:$dist_archive" "$operator_sbom:$dist_sbom"; do
  from=${pair%%:*} to=${pair#*:}
  if [[ ! -f $to ]]; then
    if ! ln -f "$from" "$to" 2>/dev/null; then
      cp "$from" "$to.partial"
      mv "$to.partial" "$to"
    fi
  fi
done
for old in "$dist"/egain-token-operator-*.oci.tar "$dist"/egain-token-operator-*.spdx.json; do
  if [[ -e $old && $old != "$dist_archive" && $old != "$dist_sbom" ]]; then
    rm -f "$old"
  fi
done

say "operator: $operator_ref ($dist_archive)"
if $list; then
  printf '%s\t%s\t%s\n' \
    base "$base_ref" "$base_archive" \
    pause "$pause_ref" "$pause_archive" \
    operator "$operator_ref" "$operator_archive"
fi
echo "$operator_ref"
