{{/* Names, labels and computed settings shared by the templates. Kubernetes names are at most 63
characters: every generated name is truncated there (and a trailing "-" trimmed). */}}

{{- define "trtforge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "trtforge.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "trtforge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "trtforge.baseLabels" -}}
app.kubernetes.io/name: {{ include "trtforge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "trtforge.selectorLabels" -}}
{{ include "trtforge.baseLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of every object the chart creates (component added by the caller or trtforge.labels). */}}
{{- define "trtforge.commonLabels" -}}
helm.sh/chart: {{ include "trtforge.chart" . }}
{{ include "trtforge.baseLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: trtforge
{{- end -}}

{{- define "trtforge.labels" -}}
{{ include "trtforge.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "trtforge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "trtforge.fullname" .) .Values.serviceAccount.name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The operator's image: repository@digest when a digest is given, else repository:tag. */}}
{{- define "trtforge.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* A workload image: call with (list $ .Values.workloadImages.trainer). */}}
{{- define "trtforge.workloadImage" -}}
{{- $root := index . 0 -}}
{{- $img := index . 1 -}}
{{- printf "%s:%s" $img.repository (default $root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{/* Where an image comes from, for NOTES.txt: call with (list $ REPOSITORY NAME). The project's release
(.github/workflows/release.yaml, on tag v<appVersion>) pushes docker/NAME.Dockerfile to
ghcr.io/trtforge/NAME; any other repository is one the user builds and pushes (docs/install.md). */}}
{{- define "trtforge.imageSource" -}}
{{- if eq (index . 1) (printf "ghcr.io/trtforge/%s" (index . 2)) -}}
release
{{- else -}}
yours
{{- end -}}
{{- end -}}

{{/* More than one replica: one leads (the Lease), the others stand by. */}}
{{- define "trtforge.ha" -}}
{{- if gt (int .Values.replicas) 1 -}}true{{- end -}}
{{- end -}}

{{/* The Role (and RoleBinding) on that Lease: fits the 63 characters of a label-safe name. */}}
{{- define "trtforge.leaderElectionName" -}}
{{- printf "%s-leader-election" (include "trtforge.fullname" . | trunc 46 | trimSuffix "-") -}}
{{- end -}}

{{/* The Lease the replicas campaign for, in the release namespace. */}}
{{- define "trtforge.leaseName" -}}
{{- default (include "trtforge.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{/* The claim the default storage URI points at: an existing one, else the one the operator creates. */}}
{{- define "trtforge.claimName" -}}
{{- default .Values.storage.pvc.name .Values.storage.existingClaim -}}
{{- end -}}

{{/* The operator creates the default store's claim per namespace unless it is an existing one or S3. */}}
{{- define "trtforge.claimCreate" -}}
{{- and .Values.storage.pvc.create (not .Values.storage.existingClaim) (not (hasPrefix "s3://" .Values.storage.uri)) -}}
{{- end -}}

{{- define "trtforge.storageUri" -}}
{{- default (printf "pvc://%s/" (include "trtforge.claimName" .)) .Values.storage.uri -}}
{{- end -}}

{{/* Namespaces that get namespaced objects: the watched ones, else the release namespace. */}}
{{- define "trtforge.targetNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- join "," .Values.watchNamespaces -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* The restricted (Pod Security Standards) pod and container security contexts. */}}
{{- define "trtforge.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "trtforge.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
