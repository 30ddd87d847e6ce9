{{/* The namespaced rules of the operator, shared by the ClusterRole (all namespaces) and the Roles.
Keep in step with what trtforge_operator does: tests/charts render the reconcilers and compare. */}}
{{- define "trtforge.namespacedRules" }}
  # the ModelDeployments: kopf watches them and patches annotations/finalizers; handlers write status
  - apiGroups: [trtforge.dev]
    resources: [modeldeployments]
    verbs: [get, list, watch, patch]
  - apiGroups: [trtforge.dev]
    resources: [modeldeployments/status]
    verbs: [get, patch]
  - apiGroups: [trtforge.dev]
    resources: [modeldeployments/scale]
    verbs: [get, patch]
  # children carry ownerReferences with blockOwnerDeletion: that needs update on the owner's finalizers
  - apiGroups: [trtforge.dev]
    resources: [modeldeployments/finalizers]
    verbs: [update]
  # training and conversion Jobs
  - apiGroups: [batch]
    resources: [jobs]
    verbs: [get, list, watch, create, patch, delete]
  # the serving runtime, its Service, spec ConfigMaps and disruption budget
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [get, list, watch, create, patch, delete]
  - apiGroups: [apps]
    resources: [deployments/scale]
    verbs: [get, patch]
  - apiGroups: [""]
    resources: [services, configmaps]
    verbs: [get, list, watch, create, patch, delete]
  - apiGroups: [policy]
    resources: [poddisruptionbudgets]
    verbs: [get, list, watch, create, patch, delete]
  # the default store's artifact claim, created in a ModelDeployment's namespace when missing; claims
  # the spec names are only read (a missing one fails the ModelDeployment before any Job)
  - apiGroups: [""]
    resources: [persistentvolumeclaims]
    verbs: [get, create]
  # Job pods: termination messages (stage results) and the last log lines of a failure
  - apiGroups: [""]
    resources: [pods]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [pods/log]
    verbs: [get]
  # a ModelDeployment's spec.storage.secretRef must exist before Jobs mount it (a clear Failed otherwise)
  - apiGroups: [""]
    resources: [secrets]
    verbs: [get]
  # Kubernetes Events for every stage change and failure (kopf posts and aggregates them)
  - apiGroups: [""]
    resources: [events]
    verbs: [create, patch]
  {{- if and .Values.autoscaler.enabled .Values.autoscaler.hpa }}
  - apiGroups: [autoscaling]
    resources: [horizontalpodautoscalers]
    verbs: [get, list, watch, create, patch, delete]
  {{- end }}
  {{- if and .Values.autoscaler.enabled .Values.autoscaler.keda }}
  - apiGroups: [keda.sh]
    resources: [scaledobjects]
    verbs: [get, list, watch, create, patch, delete]
  {{- end }}
{{- end }}
