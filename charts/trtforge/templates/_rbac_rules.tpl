{{/* The namespaced rules of the operator, shared by the ClusterRole (all namespaces) and the Roles.
Exactly the verbs trtforge_operator uses (tests/charts/test_chart_on_emulator.py records every request
of a run through the whole pipeline and fails on a verb granted but never used, unless it is listed
there with the code path that needs it). Pass (list $ "cluster") or (list $ "namespace"). */}}
{{- define "trtforge.namespacedRules" }}
{{- $root := index . 0 }}
{{- $scope := index . 1 }}
  # the ModelDeployments: kopf lists and watches them; the reconcile reads one, patches its finalizers
  # and retry annotation, and writes its status
  - apiGroups: [trtforge.dev]
    resources: [modeldeployments]
    verbs: [get, list, watch, patch]
  - apiGroups: [trtforge.dev]
    resources: [modeldeployments/status]
    verbs: [patch]
  # children carry ownerReferences with blockOwnerDeletion: that needs update on the owner's finalizers
  - apiGroups: [trtforge.dev]
    resources: [modeldeployments/finalizers]
    verbs: [update]
  # training and conversion Jobs: created once (immutable), deleted when superseded or retried
  - apiGroups: [batch]
    resources: [jobs]
    verbs: [get, list, watch, create, delete]
  # the serving runtime: created and patched, never deleted (garbage collection does that);
  # the built-in autoscaler writes its replicas through the scale subresource
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [get, list, watch, create, patch]
  - apiGroups: [apps]
    resources: [deployments/scale]
    verbs: [patch]
  # the serving and training Services
  - apiGroups: [""]
    resources: [services]
    verbs: [get, list, watch, create, patch]
  # the stages' spec ConfigMaps: immutable; the oldest revisions' are deleted
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list, watch, create, delete]
  # the serving disruption budget: removed again when the replica floor drops to 1
  - apiGroups: [policy]
    resources: [poddisruptionbudgets]
    verbs: [get, list, watch, create, patch, delete]
  # the default store's artifact claim, created in a ModelDeployment's namespace when missing; claims
  # the spec names are only read (a missing one fails the ModelDeployment before any Job) and watched,
  # so that creating a missing claim resumes the ModelDeployments that wait for it at once
  - apiGroups: [""]
    resources: [persistentvolumeclaims]
    verbs: [get, list, watch, create]
  # Job pods: termination messages (stage results), a container that cannot start (a missing Secret),
  # the serving pods the built-in autoscaler scrapes; the last log lines of a failure; the children's
  # pods (by label) are watched so that a pod that cannot start is reported at once
  - apiGroups: [""]
    resources: [pods]
    verbs: [list, watch]
  - apiGroups: [""]
    resources: [pods/log]
    verbs: [get]
  {{- if eq $scope "namespace" }}
  # watched namespaces only: a ModelDeployment's Secret must exist before Jobs mount it (with all
  # namespaces watched there is no cluster-wide Secret access: a missing one shows as the Job pod's
  # CreateContainerConfigError instead)
  - apiGroups: [""]
    resources: [secrets]
    verbs: [get]
  {{- end }}
  # Kubernetes Events for every stage change, failure and scaling decision
  - apiGroups: [""]
    resources: [events]
    verbs: [create]
  {{- if and $root.Values.autoscaler.enabled $root.Values.autoscaler.hpa }}
  - apiGroups: [autoscaling]
    resources: [horizontalpodautoscalers]
    verbs: [get, list, watch, create, patch, delete]
  {{- end }}
  {{- if and $root.Values.autoscaler.enabled $root.Values.autoscaler.keda }}
  - apiGroups: [keda.sh]
    resources: [scaledobjects]
    verbs: [get, list, watch, create, patch, delete]
  {{- end }}
{{- end }}
