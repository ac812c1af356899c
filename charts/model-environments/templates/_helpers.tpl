{{- define "model-environments.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The Application each values file yields. The {{`...`}} strings are Argo CD Go templates, kept
verbatim by Helm and evaluated by the ApplicationSet controller with the Git files generator's
parameters: for envs/<project>/<env>/values.yaml, .path.segments is [envs, <project>, <env>].
Names come from the path, never from file contents, so they are unique per file by construction.
Call with (dict "root" $ "finalizer" bool "preview" bool).
*/}}
{{- define "model-environments.applicationTemplate" -}}
{{- $ := .root -}}
metadata:
  name: '{{`{{ index .path.segments 1 }}-{{ index .path.segments 2 }}`}}'
  namespace: {{ $.Values.argocdNamespace }}
  labels:
    gitops-ml.io/project: '{{`{{ index .path.segments 1 }}`}}'
    gitops-ml.io/environment: '{{`{{ index .path.segments 2 }}`}}'
  {{- if .finalizer }}
  # Deleting the Application (its values file is gone) deletes everything it deployed.
  finalizers:
    - resources-finalizer.argocd.argoproj.io
  {{- end }}
spec:
  project: {{ $.Values.project.name }}
  sources:
    - repoURL: {{ $.Values.chart.repoURL | quote }}
      targetRevision: {{ $.Values.chart.targetRevision | quote }}
      path: {{ $.Values.chart.path | quote }}
      helm:
        releaseName: '{{`{{ index .path.segments 1 }}-{{ index .path.segments 2 }}`}}'
        valueFiles:
          - '{{`$values/{{ .path.path }}/{{ .path.filename }}`}}'
        # The platform's serving mode, over the model repo's values file (Argo CD gives
        # valuesObject precedence over valueFiles), so no model repo chooses or knows it.
        valuesObject:
          {{- include "model-environments.servingValues" . | nindent 10 }}
    - repoURL: {{ $.Values.gitops.repoURL | quote }}
      targetRevision: {{ $.Values.gitops.revision | quote }}
      ref: values
  destination:
    server: {{ $.Values.destination.server | quote }}
    namespace: '{{`{{ index .path.segments 1 }}-{{ index .path.segments 2 }}`}}'
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
    syncOptions:
      # The chart renders the Namespace itself, so the namespace goes when the Application goes.
      - CreateNamespace=false
      - PruneLast=true
    retry:
      limit: 5
      backoff:
        duration: 10s
        factor: 2
        maxDuration: 3m
{{- end }}

{{/* The Git files generator over the GitOps repo; call with (dict "root" $ "files" list). */}}
{{- define "model-environments.generator" -}}
- git:
    repoURL: {{ .root.Values.gitops.repoURL | quote }}
    revision: {{ .root.Values.gitops.revision | quote }}
    requeueAfterSeconds: {{ .root.Values.gitops.requeueAfterSeconds }}
    files:
      {{- toYaml .files | nindent 6 }}
{{- end }}

{{/*
The bento-service values the platform adds to every Application of one ApplicationSet: the
serving mode and, in kserve mode, KServe's deployment mode and, for previews, scale to zero.
Call with (dict "root" $ "preview" bool).
*/}}
{{- define "model-environments.servingValues" -}}
{{- $serving := .root.Values.serving -}}
serving:
  mode: {{ $serving.mode }}
{{- if eq $serving.mode "kserve" }}
kserve:
  deploymentMode: {{ $serving.kserve.deploymentMode }}
  {{- if and .preview $serving.kserve.previewScaleToZero }}
  minReplicas: 0
  {{- end }}
{{- end }}
{{- end }}
