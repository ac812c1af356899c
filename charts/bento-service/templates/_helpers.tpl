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
Threads for numerical libraries, from a container's resources: the CPU limit rounded up
("500m" -> 1, "2.5" -> 3), so OpenMP/BLAS do not start one thread per node core and get throttled.
*/}}
{{- define "bento-service.threads" -}}
{{- $cpu := toString .limits.cpu }}
{{- $cores := 0.0 }}
{{- if hasSuffix "m" $cpu }}
{{- $cores = divf (trimSuffix "m" $cpu | float64) 1000 }}
{{- else }}
{{- $cores = float64 $cpu }}
{{- end }}
{{- max 1 (ceil $cores | int) }}
{{- end }}

{{/* "true" when KServe serves the environment (serving.mode kserve), else empty. */}}
{{- define "bento-service.kserve" -}}
{{- if eq .Values.serving.mode "kserve" }}true{{ end }}
{{- end }}

{{/* The KServe deployment mode: Knative unless Standard is asked for. */}}
{{- define "bento-service.kserveMode" -}}
{{- if eq (toString .Values.kserve.deploymentMode) "Standard" }}Standard{{ else }}Knative{{ end }}
{{- end }}

{{/* "true" in kserve mode on Knative (serverless), else empty. */}}
{{- define "bento-service.knative" -}}
{{- if and (include "bento-service.kserve" .) (eq (include "bento-service.kserveMode" .) "Knative") }}true{{ end }}
{{- end }}

{{/*
The container port's name: `http` for the chart's own Service, `http1` under KServe (Knative
accepts only "", "http1" or "h2c", and probes must name the container's port).
*/}}
{{- define "bento-service.portName" -}}
{{- if include "bento-service.kserve" . }}http1{{ else }}http{{ end }}
{{- end }}

{{/* Labels on the pods: the chart's labels plus podLabels. */}}
{{- define "bento-service.podLabels" -}}
{{ include "bento-service.labels" . }}
{{- with .Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Annotations on the pods: lineage, Prometheus scraping, podAnnotations. */}}
{{- define "bento-service.podAnnotations" -}}
{{ include "bento-service.lineageAnnotations" . }}
{{- if .Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.bento.port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The Bento container, the same in both serving modes but for its name and its port's name.
Call with (dict "root" $ "name" "bento").
*/}}
{{- define "bento-service.container" -}}
{{- $ := .root -}}
{{- $threads := include "bento-service.threads" $.Values.resources -}}
{{- $port := include "bento-service.portName" $ -}}
{{- $chartEnv := list "BENTO_IMAGE" "BENTOML_HOME" "BENTOML_PORT" "BENTOML_DO_NOT_TRACK" "BENTOML_CONFIG_OVERRIDES" "OMP_NUM_THREADS" "OPENBLAS_NUM_THREADS" "MKL_NUM_THREADS" }}
{{- range $name, $_ := $.Values.bento.envValueFrom }}
{{- if or (hasKey $.Values.bento.env $name) (has $name $chartEnv) }}
{{- fail (printf "bento.envValueFrom.%s: also set by bento.env or by the chart; set it in one place" $name) }}
{{- end }}
{{- end -}}
name: {{ .name }}
image: {{ include "bento-service.image" $ | quote }}
imagePullPolicy: {{ $.Values.image.pullPolicy }}
ports:
  - name: {{ $port }}
    containerPort: {{ $.Values.bento.port }}
    protocol: TCP
env:
  # The reference the pod runs, for /metadata: the deploy tool checks it against what it deployed.
  - name: BENTO_IMAGE
    value: {{ include "bento-service.image" $ | quote }}
  - name: BENTOML_HOME
    value: {{ $.Values.bento.homeDir | quote }}
  - name: BENTOML_PORT
    value: {{ $.Values.bento.port | quote }}
  - name: BENTOML_DO_NOT_TRACK
    value: "true"
  {{- if and $.Values.bento.service $.Values.bento.workers }}
  # Per-service config, because a worker count in @bentoml.service beats a global default.
  - name: BENTOML_CONFIG_OVERRIDES
    value: {{ dict "services" (dict $.Values.bento.service (dict "workers" $.Values.bento.workers)) | toJson | quote }}
  {{- end }}
  - name: OMP_NUM_THREADS
    value: {{ $threads | quote }}
  - name: OPENBLAS_NUM_THREADS
    value: {{ $threads | quote }}
  - name: MKL_NUM_THREADS
    value: {{ $threads | quote }}
  {{- range $name, $value := $.Values.bento.env }}
  - name: {{ $name }}
    value: {{ $value | quote }}
  {{- end }}
  {{- range $name, $source := $.Values.bento.envValueFrom }}
  - name: {{ $name }}
    valueFrom:
      {{- toYaml $source | nindent 6 }}
  {{- end }}
{{- with $.Values.bento.envFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
startupProbe:
  httpGet:
    path: /readyz
    port: {{ $port }}
  periodSeconds: {{ $.Values.probes.startup.periodSeconds }}
  failureThreshold: {{ $.Values.probes.startup.failureThreshold }}
livenessProbe:
  httpGet:
    path: /livez
    port: {{ $port }}
  periodSeconds: {{ $.Values.probes.liveness.periodSeconds }}
  timeoutSeconds: {{ $.Values.probes.liveness.timeoutSeconds }}
  failureThreshold: {{ $.Values.probes.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ $port }}
  periodSeconds: {{ $.Values.probes.readiness.periodSeconds }}
  timeoutSeconds: {{ $.Values.probes.readiness.timeoutSeconds }}
  failureThreshold: {{ $.Values.probes.readiness.failureThreshold }}
resources:
  {{- toYaml $.Values.resources | nindent 2 }}
# Pod Security "restricted" in full on the container, so it holds where the pod-level context
# is not allowed (Knative, unless its podspec-securitycontext feature is on).
securityContext:
  {{- include "bento-service.containerSecurity" $ | nindent 2 }}
# The root filesystem is read-only: BentoML writes only under BENTOML_HOME
# (tmp dirs, Prometheus multiprocess files) and /tmp.
volumeMounts:
  - name: bentoml-home
    mountPath: {{ $.Values.bento.homeDir }}
  - name: tmp
    mountPath: /tmp
  {{- $seen := list (clean $.Values.bento.homeDir) "/tmp" }}
  {{- range $name, $volume := $.Values.bento.volumes }}
  {{- $path := clean $volume.mountPath }}
  {{- if has $path $seen }}
  {{- fail (printf "bento.volumes.%s.mountPath: %s is already mounted (bento.homeDir, /tmp or another volume)" $name $path) }}
  {{- end }}
  {{- $seen = append $seen $path }}
  - name: {{ $name }}
    mountPath: {{ $volume.mountPath | quote }}
    {{- with $volume.subPath }}
    subPath: {{ . | quote }}
    {{- end }}
    {{- if not (hasKey $volume "emptyDir") }}
    readOnly: true
    {{- end }}
  {{- end }}
{{- end }}

{{/* Pod Security "restricted" for one container: non-root, read-only root, no capabilities. */}}
{{- define "bento-service.containerSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The pod's volumes: the two scratch emptyDirs, then bento.volumes. */}}
{{- define "bento-service.volumes" -}}
- name: bentoml-home
  emptyDir:
    sizeLimit: {{ .Values.bento.scratchSizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.bento.scratchSizeLimit }}
{{- range $name, $volume := .Values.bento.volumes }}
- name: {{ $name }}
  {{- if hasKey $volume "secret" }}
  secret:
    {{- toYaml $volume.secret | nindent 4 }}
  {{- else if hasKey $volume "configMap" }}
  configMap:
    {{- toYaml $volume.configMap | nindent 4 }}
  {{- else }}
  emptyDir: {{ $volume.emptyDir | toJson }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Pod-level settings both modes share. Knative refuses a pod securityContext and
terminationGracePeriodSeconds (it derives the grace period from the revision timeout), so they are
left out there; the container carries the restricted settings itself.
*/}}
{{- define "bento-service.podSettings" -}}
serviceAccountName: {{ include "bento-service.serviceAccountName" . }}
automountServiceAccountToken: false
# No Service environment variables: they leak other services' addresses and slow start-up.
enableServiceLinks: false
{{- if not (include "bento-service.knative" .) }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ .Values.securityContext.runAsUser }}
  runAsGroup: {{ .Values.securityContext.runAsGroup }}
  fsGroup: {{ .Values.securityContext.fsGroup }}
  seccompProfile:
    type: RuntimeDefault
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  {{- include "bento-service.volumes" . | nindent 2 }}
{{- end }}

{{/* The spec a Deployment and a canary Rollout share: replicas, selector and the pod template. */}}
{{- define "bento-service.workloadSpec" -}}
{{- if not .Values.autoscaling.enabled }}
replicas: {{ .Values.replicaCount }}
{{- end }}
revisionHistoryLimit: {{ .Values.revisionHistoryLimit }}
selector:
  matchLabels:
    {{- include "bento-service.selectorLabels" . | nindent 4 }}
template:
  metadata:
    labels:
      {{- include "bento-service.podLabels" . | nindent 6 }}
    annotations:
      {{- include "bento-service.podAnnotations" . | nindent 6 }}
  spec:
    {{- include "bento-service.podSettings" . | nindent 4 }}
    containers:
      - {{ include "bento-service.container" (dict "root" . "name" "bento") | indent 8 | trim }}
{{- end }}

{{/*
The batch scorer in the model image. Call with (dict "root" $ "input" "output" "work"
"resources" "threads" "bento"): the paths it reads and writes, whether the scratch volume is
mounted, its resources, their thread count, and the image's Bento directory.
*/}}
{{- define "bento-service.batchScorer" -}}
{{- $ := .root -}}
{{- $b := $.Values.batch -}}
name: score
image: {{ include "bento-service.image" $ | quote }}
imagePullPolicy: {{ $.Values.image.pullPolicy }}
workingDir: {{ .bento }}
command:
  - python
  - -m
  - {{ printf "%s.serving.batch" ($.Values.project | replace "-" "_") }}
args:
  - --input
  - {{ .input | quote }}
  - --output
  - {{ .output | quote }}
env:
  - name: PYTHONPATH
    value: {{ printf "%s/src" .bento | quote }}
  - name: BENTOML_HOME
    value: {{ $.Values.bento.homeDir | quote }}
  - name: BENTOML_DO_NOT_TRACK
    value: "true"
  - name: SCORE_CHUNK_ROWS
    value: {{ $b.chunkRows | quote }}
  - name: OMP_NUM_THREADS
    value: {{ .threads | quote }}
  - name: OPENBLAS_NUM_THREADS
    value: {{ .threads | quote }}
  - name: MKL_NUM_THREADS
    value: {{ .threads | quote }}
resources:
  {{- toYaml .resources | nindent 2 }}
securityContext:
  {{- include "bento-service.containerSecurity" $ | nindent 2 }}
volumeMounts:
  - name: bentoml-home
    mountPath: {{ $.Values.bento.homeDir }}
  - name: tmp
    mountPath: /tmp
  {{- if .work }}
  - name: work
    mountPath: /work
  {{- end }}
  {{- if $b.persistentVolumeClaim }}
  - name: data
    mountPath: {{ $b.dataDir }}
  {{- end }}
{{- end }}

{{/*
The copier: rclone copies one file between an object store and the scratch volume. Call with
(dict "root" $ "name" "from" "to"); an s3://, gs:// or az:// URL becomes rclone's on-the-fly
remote (:s3:, :gcs:, :azureblob:), configured by RCLONE_* variables in batch.copier.env/envFrom.
*/}}
{{- define "bento-service.copier" -}}
{{- $ := .root -}}
{{- $c := $.Values.batch.copier -}}
{{- $remote := dict "s3" ":s3:" "gs" ":gcs:" "az" ":azureblob:" -}}
name: {{ .name }}
image: {{ $c.image | quote }}
imagePullPolicy: {{ $.Values.image.pullPolicy }}
command:
  - rclone
args:
  - copyto
  # The job writes one object: it needs no right to list or create the bucket.
  - --s3-no-check-bucket
  {{- range list .from .to }}
  {{- $scheme := include "bento-service.objectStore" . }}
  - {{ ternary (printf "%s%s" (get $remote $scheme) (trimPrefix (printf "%s://" $scheme) .)) . (ne $scheme "") | quote }}
  {{- end }}
env:
  - name: HOME
    value: /tmp
  {{- range $name, $value := $c.env }}
  - name: {{ $name }}
    value: {{ $value | quote }}
  {{- end }}
{{- with $c.envFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "bento-service.containerSecurity" $ | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: work
    mountPath: /work
{{- end }}

{{/* The object store a batch location names: "s3", "gs" or "az" for such a URL, else empty. */}}
{{- define "bento-service.objectStore" -}}
{{- regexFind "^(s3|gs|az)://" . | trimSuffix "://" }}
{{- end }}

{{/* The CronJob's name: at most 52 characters (its Jobs add 11); release names may have 53. */}}
{{- define "bento-service.cronJobName" -}}
{{- include "bento-service.fullname" . | trunc 52 | trimSuffix "-" }}
{{- end }}
