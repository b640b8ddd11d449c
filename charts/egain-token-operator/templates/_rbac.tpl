{{/*
The rules for the objects the operator reads and writes in the namespaces it
serves. They are granted by the ClusterRole in all-namespaces mode and by one
Role per namespace in namespaced mode, so both modes grant the same verbs.
Each verb is one the operator (or kopf under it) actually sends; see
docs/helm.md for the reasoning.
*/}}
{{- define "egain-token-operator.namespacedRules" }}
  # EgainTokens: kopf lists and watches them. The operator uses only event
  # handlers, so kopf adds no finalizers or annotations: no get/patch.
  - apiGroups: ["egain.cloud"]
    resources: ["egaintokens"]
    verbs: ["list", "watch"]
  # Ready condition, expiry and failure details (a merge patch).
  - apiGroups: ["egain.cloud"]
    resources: ["egaintokens/status"]
    verbs: ["patch"]
  # EgainClients: watched so that a change reaches their tokens, and read
  # when a token names one.
  - apiGroups: ["egain.cloud"]
    resources: ["egainclients"]
    verbs: ["get", "list", "watch"]
  # Their Ready condition and token count.
  - apiGroups: ["egain.cloud"]
    resources: ["egainclients/status"]
    verbs: ["patch"]
  # Credentials are read, token Secrets are created and replaced (a
  # conditional update), and all are watched (to notice rotated credentials and
  # restore a token Secret deleted or edited by hand). No delete: token Secrets
  # are owned by their EgainToken and removed by the garbage collector.
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get", "list", "watch", "create", "update"]
  # TokenIssued and failure Events (the operator only ever creates them).
  - apiGroups: [""]
    resources: ["events"]
    verbs: ["create"]
{{- if .Values.rolloutRestarts.enabled }}
  # spec.rolloutRestartTargets: the pod template of each target gets a
  # restarted-at annotation, as `kubectl rollout restart` does.
  - apiGroups: ["apps"]
    resources: ["deployments", "statefulsets", "daemonsets"]
    verbs: ["get", "patch"]
{{- end }}
{{- end }}
{{/*
The rules only a cluster-wide grant can give: ClusterEgainClients are
cluster-scoped, and allowedNamespaces.selector is matched against the labels
of namespaces. Granted in all-namespaces mode only: a namespaced release
keeps no cluster-wide permission and does not serve ClusterEgainClients
(docs/helm.md).
*/}}
{{- define "egain-token-operator.clusterRules" }}
  - apiGroups: ["egain.cloud"]
    resources: ["clusteregainclients"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["egain.cloud"]
    resources: ["clusteregainclients/status"]
    verbs: ["patch"]
  # Namespace labels, for allowedNamespaces.selector (watched, so that a
  # relabelled namespace gains or loses access within seconds).
  - apiGroups: [""]
    resources: ["namespaces"]
    verbs: ["list", "watch"]
{{- end }}
