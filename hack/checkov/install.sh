#!/usr/bin/env bash
# Installs checkov into .venv-checkov at the repository root, at the versions
# hack/checkov/constraints.txt pins (see lock.sh), unless that virtualenv
# already holds exactly them. Prints the path of the checkov executable.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
venv="$repo/.venv-checkov"
stamp="$venv/.installed"
want=$(sha256sum "$here/constraints.txt" | cut -d' ' -f1)
# One installer at a time per work tree (two test runs may start together).
exec 9<"$here/constraints.txt"
flock 9
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "installing checkov into $venv (first time only)..." >&2
  started=$SECONDS
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    --constraint "$here/constraints.txt" checkov
  echo "$want" >"$stamp"
  echo "installed checkov in $((SECONDS - started))s" >&2
fi
echo "$venv/bin/checkov"
