#!/usr/bin/env bash
# Copies every CRD under crds/ into the Helm chart, which must ship them
# byte-identical and nothing else (tests/unit/test_chart_crd.py fails when the
# two directories differ). Run it after every change under crds/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source_dir="${root}/crds"
chart_dir="${root}/charts/egain-token-operator/crds"

shopt -s nullglob
source_crds=("${source_dir}"/*.yaml)
if (( ${#source_crds[@]} == 0 )); then
  echo "sync-chart-crd: no CRD under ${source_dir}" >&2
  exit 1
fi
mkdir -p "${chart_dir}"
# A CRD removed from crds/ must leave the chart too.
for chart_crd in "${chart_dir}"/*; do
  if [[ ! -f "${source_dir}/$(basename "${chart_crd}")" ]]; then
    rm -- "${chart_crd}"
    echo "sync-chart-crd: ${chart_crd} removed"
  fi
done
# cp, not a template or a symlink: Helm packages crds/ verbatim and does not
# follow links out of the chart directory.
for source_crd in "${source_crds[@]}"; do
  cp "${source_crd}" "${chart_dir}/"
  echo "sync-chart-crd: ${chart_dir}/$(basename "${source_crd}") updated"
done
