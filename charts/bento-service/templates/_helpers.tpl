{{/*
Resource names are the release name, which Argo CD sets to <project>-<environment>
(at most 53 characters), so every name stays a valid DNS-1035 label.
*/}}
{{- define "bento-service.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "bento-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Pod selector: stable for the life of the release. */}}
{{- define "bento-service.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels on every object. Lineage values become labels only when they are valid label values;
all of them are also annotations (see bento-service.lineageAnnotations). The branch never is a label.
*/}}
{{- define "bento-service.labels" -}}
helm.sh/chart: {{ include "bento-service.chart" . }}
{{ include "bento-service.selectorLabels" . }}
app.kubernetes.io/part-of: {{ .Values.project }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- $version := include "bento-service.imageVersion" . }}
{{- if $version }}
app.kubernetes.io/version: {{ $version | quote }}
{{- end }}
gitops-ml.io/project: {{ .Values.project }}
gitops-ml.io/environment: {{ .Values.environment }}
{{- range $key, $value := dict "git-commit" .Values.lineage.gitCommit "mlflow-run-id" .Values.lineage.mlflowRunId "model-name" .Values.lineage.modelName "model-version" .Values.lineage.modelVersion }}
{{- if and $value (le (len $value) 63) (regexMatch "^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$" $value) }}
gitops-ml.io/{{ $key }}: {{ $value | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Lineage as annotations: every value quoted, so any branch name stays data. */}}
{{- define "bento-service.lineageAnnotations" -}}
gitops-ml.io/image: {{ include "bento-service.image" $ | quote }}
{{- range $key, $value := dict "branch" .Values.lineage.branch "git-commit" .Values.lineage.gitCommit "mlflow-run-id" .Values.lineage.mlflowRunId "model-name" .Values.lineage.modelName "model-version" .Values.lineage.modelVersion "deployed-at" .Values.lineage.deployedAt }}
{{- if $value }}
gitops-ml.io/{{ $key }}: {{ $value | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The image reference: a digest pins the exact bytes and wins over the tag. */}}
{{- define "bento-service.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else if .Values.image.tag }}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- else }}
{{- fail "image.tag or image.digest must be set" }}
{{- end }}
{{- end }}

{{/* A short version label: the tag when it is a valid label value, else the digest's first 12 hex digits. */}}
{{- define "bento-service.imageVersion" -}}
{{- if regexMatch "^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$" .Values.image.tag }}
{{- .Values.image.tag }}
{{- else if .Values.image.digest }}
{{- .Values.image.digest | trimPrefix "sha256:" | trunc 12 }}
{{- end }}
{{- end }}

{{- define "bento-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- include "bento-service.fullname" . }}
{{- else }}
{{- "default" }}
{{- end }}
{{- end }}

{{/*
Threads for numerical libraries: the CPU limit rounded up ("500m" -> 1, "2.5" -> 3), so
OpenMP/BLAS do not start one thread per node core and get throttled.
*/}}
{{- define "bento-service.threads" -}}
{{- $cpu := toString .Values.resources.limits.cpu }}
{{- $cores := 0.0 }}
{{- if hasSuffix "m" $cpu }}
{{- $cores = divf (trimSuffix "m" $cpu | float64) 1000 }}
{{- else }}
{{- $cores = float64 $cpu }}
{{- end }}
{{- max 1 (ceil $cores | int) }}
{{- end }}
