#!/usr/bin/env bash
# Copies the EgainToken CRD into the Helm chart, which must ship it
# byte-identical (tests/unit/test_chart_crd.py fails when the two differ).
# Run it after every change to crds/egaintokens.egain.cloud.yaml.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source_crd="${root}/crds/egaintokens.egain.cloud.yaml"
chart_crd="${root}/charts/egain-token-operator/crds/egaintokens.egain.cloud.yaml"

if [[ ! -f "${source_crd}" ]]; then
  echo "sync-chart-crd: ${source_crd} does not exist" >&2
  exit 1
fi
mkdir -p "$(dirname "${chart_crd}")"
# cp, not a template or a symlink: Helm packages crds/ verbatim and does not
# follow links out of the chart directory.
cp "${source_crd}" "${chart_crd}"
echo "sync-chart-crd: ${chart_crd} updated"
