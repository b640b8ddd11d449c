{{/*
Peering objects: kopf never creates its peering object, it only patches
keep-alives into an existing one, and with a peering name set it stays paused
until that object exists. The chart therefore creates it.

It is a post-install/post-upgrade hook because its kind may be defined by a
CRD of this same release (kopf-peering-crds.yaml): Helm resolves every
ordinary template against the API server before creating anything, so an
ordinary template of a kind introduced by the release would fail; hooks are
resolved only when they run, after the release's CRDs exist.

A hook is deleted and re-created whenever it is rendered, and an empty
peering object briefly lets every replica act, so it is rendered only while
the object does not exist yet (lookup only works once the kind is known to the
API server, hence the Capabilities check; `helm template` always renders it).
Uninstalling the release deletes the peering CRDs and with them the object.

Arguments: a dict with "root" (the top context), "kind", "namespace" ("" for
the cluster-scoped kind).
*/}}
{{- define "egain-token-operator.peeringObject" -}}
{{- $root := .root }}
{{- $name := include "egain-token-operator.peeringName" $root }}
{{- $exists := false }}
{{- if $root.Capabilities.APIVersions.Has (printf "kopf.dev/v1/%s" .kind) }}
{{- $exists = not (empty (lookup "kopf.dev/v1" .kind .namespace $name)) }}
{{- end }}
{{- if not $exists }}
---
apiVersion: kopf.dev/v1
kind: {{ .kind }}
metadata:
  name: {{ $name }}
  {{- with .namespace }}
  namespace: {{ . }}
  {{- end }}
  labels:
    {{- include "egain-token-operator.labels" $root | nindent 4 }}
  annotations:
    helm.sh/hook: post-install,post-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
{{- end }}
{{- end }}
