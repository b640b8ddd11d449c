{{/*
Names, labels and small computed values shared by every template.
Kubernetes names are limited to 63 characters (DNS-1123 labels), hence the truncation.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "egain-token-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of every resource: fullnameOverride, else "<release>-<chart>",
collapsed to "<release>" when the release name already contains the chart name
(so `helm install egain-token-operator .` does not yield a doubled name).
*/}}
{{- define "egain-token-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<chart>-<version>" for the helm.sh/chart label ("+" is not allowed in label values). */}}
{{- define "egain-token-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: the subset that identifies the operator's Pods. They must
never change between releases, because a Deployment's selector is immutable.
*/}}
{{- define "egain-token-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "egain-token-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The standard labels carried by every object the chart creates. */}}
{{- define "egain-token-operator.labels" -}}
helm.sh/chart: {{ include "egain-token-operator.chart" . }}
{{ include "egain-token-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: egain-token-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "egain-token-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "egain-token-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The container image: a digest pins it exactly and wins over the tag; the tag
defaults to the chart's appVersion so chart and operator versions move together.
*/}}
{{- define "egain-token-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The namespaces the operator serves, de-duplicated; empty means all namespaces. */}}
{{- define "egain-token-operator.watchNamespaces" -}}
{{- .Values.watchNamespaces | uniq | join "," }}
{{- end }}

{{/*
The leader election Lease, "<namespace>/<name>": one per release, in the
release's namespace, shared by all its replicas.
*/}}
{{- define "egain-token-operator.leaderElectionLease" -}}
{{- printf "%s/%s" .Release.Namespace (include "egain-token-operator.fullname" .) }}
{{- end }}

{{/*
A number for an environment variable. Helm reads YAML numbers as float64, and
printing a large whole float gives "3.6e+06", which the operator would reject;
whole numbers are therefore printed as integers, fractions as they are.
*/}}
{{- define "egain-token-operator.number" -}}
{{- if eq (float64 .) (floor .) }}
{{- int64 . }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/*
A listening address, HOST:PORT, from a {host, port} value; an IPv6 host goes in
brackets, as the operator's --metrics-address and --health-address take it.
*/}}
{{- define "egain-token-operator.address" -}}
{{- if contains ":" .host }}
{{- printf "[%s]:%d" .host (int .port) }}
{{- else }}
{{- printf "%s:%d" .host (int .port) }}
{{- end }}
{{- end }}

{{/* Where the extra CA bundle is mounted in the container. */}}
{{- define "egain-token-operator.caBundleDir" -}}
/etc/egain-token-operator/ca
{{- end }}

{{/*
Checks of checkov (a static checker of Kubernetes manifests, run over the
rendered chart by tests/e2e/test_chart_checkov.py) that the chart does not
satisfy in a given configuration, as "ID=reason" lines; each becomes a
`checkov.io/skipN` annotation of the Deployment (a reason may not contain
"="; checkov reads the skips of the Deployment's Pods there too). They are left
out as soon as the values satisfy the check. docs/helm.md, "Static checks",
lists them.
*/}}
{{- define "egain-token-operator.checkovSkips" -}}
CKV_K8S_38=the operator is a Kubernetes API client: it authenticates with its ServiceAccount token
{{- if not .Values.image.digest }}
CKV_K8S_43=the image is pinned by digest only when image.digest is set
{{- if ne .Values.image.pullPolicy "Always" }}
CKV_K8S_15=a versioned tag is not re-pulled on every Pod start; set image.digest (or image.pullPolicy Always)
{{- end }}
{{- end }}
{{- if not .Values.networkPolicy.enabled }}
CKV2_K8S_6=networkPolicy.enabled is off: the policy needs this cluster's API server and token host addresses
{{- end }}
{{- end }}

{{/* Annotations `checkov.io/skip1: ID=reason`, ... from checkovSkips lines. */}}
{{- define "egain-token-operator.checkovSkipAnnotations" -}}
{{- range $index, $skip := splitList "\n" . | compact }}
checkov.io/skip{{ add1 $index }}: {{ $skip | quote }}
{{- end }}
{{- end }}

{{/*
Checks that cannot be expressed in values.schema.json, run once from the
Deployment template so that `helm template` and `helm install` fail early
with a message that names the values involved.
*/}}
{{- define "egain-token-operator.validate" -}}
{{- if and .Values.caBundle.configMap.name .Values.caBundle.secret.name }}
{{- fail "caBundle: set either caBundle.configMap.name or caBundle.secret.name, not both" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: without it every replica would refresh every token" }}
{{- end }}
{{- if and (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.apiServer.cidrs) }}
{{- fail "networkPolicy.apiServer.cidrs: list the API server's endpoint addresses (kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes): without them the NetworkPolicy cuts the operator off the API server" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.tokenHosts.cidrs) }}
{{- fail "networkPolicy.tokenHosts.cidrs: list the CIDRs of the token hosts (allowedTokenHosts): without them the NetworkPolicy blocks every token request" }}
{{- end }}
{{- end }}
