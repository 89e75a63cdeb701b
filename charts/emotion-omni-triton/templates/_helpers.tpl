{{/*
emotion-omni-triton.name: the chart name, or nameOverride; truncated to 63 characters (a DNS label).
*/}}
{{- define "emotion-omni-triton.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
emotion-omni-triton.fullname: the base name of every object. fullnameOverride wins; a release name that already
contains the chart name is used as is; otherwise <release>-<name>. Truncated to 52 characters so suffixes such as
"-adapter-rules" and the ReplicaSet/pod hashes still fit in 63.
*/}}
{{- define "emotion-omni-triton.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
emotion-omni-triton.chart: "<chart>-<version>" for the helm.sh/chart label.
*/}}
{{- define "emotion-omni-triton.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
emotion-omni-triton.selectorLabels: the immutable labels that Deployment, Service, PDB, NetworkPolicy and
ServiceMonitor select on. Kept to name + instance so an upgrade never has to change a selector.
*/}}
{{- define "emotion-omni-triton.selectorLabels" -}}
app.kubernetes.io/name: {{ include "emotion-omni-triton.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
emotion-omni-triton.labels: every object's labels = the selector labels + chart, version and ownership labels
(which may change between releases, so they stay out of selectors).
*/}}
{{- define "emotion-omni-triton.labels" -}}
helm.sh/chart: {{ include "emotion-omni-triton.chart" . }}
{{ include "emotion-omni-triton.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: inference-server
app.kubernetes.io/part-of: emotion-omni
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
emotion-omni-triton.podLabels: the Triton pods' labels: selector labels + component and part-of. Chart and app
versions stay off the pod template, so a chart upgrade that changes nothing in the pod does not restart (and
reload the model in) every replica.
*/}}
{{- define "emotion-omni-triton.podLabels" -}}
{{ include "emotion-omni-triton.selectorLabels" . }}
app.kubernetes.io/component: inference-server
app.kubernetes.io/part-of: emotion-omni
{{- end }}

{{/*
emotion-omni-triton.testLabels: labels of the `helm test` pod. Its app.kubernetes.io/name differs from the
server's, so the Service, PDB and NetworkPolicy selectors never match it.
*/}}
{{- define "emotion-omni-triton.testLabels" -}}
helm.sh/chart: {{ include "emotion-omni-triton.chart" . }}
app.kubernetes.io/name: {{ include "emotion-omni-triton.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
app.kubernetes.io/part-of: emotion-omni
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
emotion-omni-triton.serviceAccountName: the ServiceAccount the pods run as.
*/}}
{{- define "emotion-omni-triton.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "emotion-omni-triton.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
emotion-omni-triton.image: repository@digest when a digest is pinned, else repository:tag (tag defaults to
appVersion).
*/}}
{{- define "emotion-omni-triton.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
emotion-omni-triton.repositoryBase: the base URI that holds one Triton repository per model version:
modelRepository.uri, or s3://[http://]<endpoint>/<bucket>[/<prefix>] built from modelRepository.s3.
Triton's S3 client defaults to HTTPS for host:port URIs; "http://" after "s3://" selects plain HTTP.
*/}}
{{- define "emotion-omni-triton.repositoryBase" -}}
{{- with .Values.modelRepository }}
{{- if .uri }}
{{- .uri }}
{{- else }}
{{- $path := trimAll "/" (printf "%s/%s" .s3.bucket .s3.prefix) }}
{{- printf "s3://%s%s/%s" (ternary "" "http://" .s3.tls) .s3.endpoint $path }}
{{- end }}
{{- end }}
{{- end }}

{{/*
emotion-omni-triton.repositoryUri: what --model-repository gets: <base>/<model.version>, so the pods load exactly
the registered version and a version change alters the pod template (a rollout).
*/}}
{{- define "emotion-omni-triton.repositoryUri" -}}
{{- printf "%s/%d" (include "emotion-omni-triton.repositoryBase" .) (int .Values.model.version) }}
{{- end }}

{{/*
emotion-omni-triton.objectStorePort: the object store's port, read from the repository URI (the schema requires
host:port in it), for the NetworkPolicy's egress rule.
*/}}
{{- define "emotion-omni-triton.objectStorePort" -}}
{{- $hostPort := regexFind "[A-Za-z0-9.-]+:[0-9]+/" (include "emotion-omni-triton.repositoryBase" .) }}
{{- $hostPort | trimSuffix "/" | splitList ":" | last }}
{{- end }}

{{/*
emotion-omni-triton.adminSecretName: the Secret holding the restricted-API header value (falls back to the
object-store credentials Secret).
*/}}
{{- define "emotion-omni-triton.adminSecretName" -}}
{{- default .Values.modelRepository.credentials.existingSecret .Values.restrictedApi.existingSecret }}
{{- end }}

{{/*
emotion-omni-triton.adminKeyEnv: the container env var that carries the restricted-API header value; the
tritonserver args reference it as $(...) and Kubernetes substitutes it at container start.
*/}}
{{- define "emotion-omni-triton.adminKeyEnv" -}}
TRITON_RESTRICTED_API_VALUE
{{- end }}

{{/*
emotion-omni-triton.ownedFlags: tritonserver flags the chart sets itself; triton.extraArgs may not repeat them.
*/}}
{{- define "emotion-omni-triton.ownedFlags" -}}
--model-repository --model-control-mode --load-model --http-port --grpc-port --metrics-port --http-restricted-api --grpc-restricted-protocol --metrics-config --allow-metrics --exit-timeout-secs --strict-readiness --disable-auto-complete-config --log-verbose --allow-gpu-metrics
{{- end }}

{{/*
emotion-omni-triton.validate: cross-field rules the schema cannot express. Each failure names the key, the value
and the fix. Included once, from deployment.yaml, so every render runs it.
*/}}
{{- define "emotion-omni-triton.validate" -}}
{{- $v := .Values }}
{{- /* GPU profile and GPU count must agree. */}}
{{- if and (eq $v.profile "gpu") (lt (int $v.gpu.count) 1) }}
{{- fail (printf "gpu.count=%v: profile=gpu needs at least one GPU per pod. Fix: --set gpu.count=1 (or use profile=cpu)." $v.gpu.count) }}
{{- end }}
{{- if and (eq $v.profile "cpu") (gt (int $v.gpu.count) 0) }}
{{- fail (printf "gpu.count=%v with profile=cpu: a CPU pod gets no GPU. Fix: --set profile=gpu, or gpu.count=0." $v.gpu.count) }}
{{- end }}
{{- range $section := list "requests" "limits" }}
{{- if hasKey (get $v.resources $section | default dict) $v.gpu.resourceName }}
{{- fail (printf "resources.%s.%s: GPUs are set by gpu.count (with profile=gpu), not in resources. Fix: remove it from resources and set gpu.count." $section $v.gpu.resourceName) }}
{{- end }}
{{- end }}
{{- /* Autoscaling. */}}
{{- if $v.autoscaling.enabled }}
{{- if gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas) }}
{{- fail (printf "autoscaling.minReplicas=%v is greater than autoscaling.maxReplicas=%v. Fix: make minReplicas <= maxReplicas." $v.autoscaling.minReplicas $v.autoscaling.maxReplicas) }}
{{- end }}
{{- if not (get ($v.resources.requests | default dict) "cpu") }}
{{- fail "resources.requests.cpu is not set, but autoscaling.enabled=true uses CPU utilization (a percentage of requests.cpu) as its fallback metric. Fix: set resources.requests.cpu, or autoscaling.enabled=false." }}
{{- end }}
{{- end }}
{{- /* Rollouts and shutdown. */}}
{{- $zero := list "0" "0%" }}
{{- if and (has (toString $v.rollout.maxSurge) $zero) (has (toString $v.rollout.maxUnavailable) $zero) }}
{{- fail "rollout.maxSurge and rollout.maxUnavailable are both 0, so a rollout could never progress. Fix: rollout.maxSurge=1 (keeps capacity during upgrades)." }}
{{- end }}
{{- $drain := add $v.rollout.preStopSleepSeconds $v.triton.exitTimeoutSeconds }}
{{- if le (int $v.rollout.terminationGracePeriodSeconds) (int $drain) }}
{{- fail (printf "rollout.terminationGracePeriodSeconds=%v must exceed rollout.preStopSleepSeconds + triton.exitTimeoutSeconds = %v, or in-flight requests are killed. Fix: --set rollout.terminationGracePeriodSeconds=%d." $v.rollout.terminationGracePeriodSeconds $drain (add $drain 15)) }}
{{- end }}
{{- if $v.podDisruptionBudget.enabled }}
{{- $pdb := $v.podDisruptionBudget }}
{{- $max := toString $pdb.maxUnavailable }}
{{- $min := toString $pdb.minAvailable }}
{{- if and $max $min }}
{{- fail (printf "podDisruptionBudget.maxUnavailable=%s and podDisruptionBudget.minAvailable=%s are both set; a PodDisruptionBudget takes one. Fix: set the other to \"\"." $max $min) }}
{{- end }}
{{- if and (not $max) (not $min) }}
{{- fail "podDisruptionBudget.enabled=true but maxUnavailable and minAvailable are both empty. Fix: --set podDisruptionBudget.maxUnavailable=1." }}
{{- end }}
{{- end }}
{{- /* Credentials never as plain values. */}}
{{- $secretEnv := list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" "AWS_SESSION_TOKEN" "AWS_DEFAULT_REGION" (include "emotion-omni-triton.adminKeyEnv" .) }}
{{- range $i, $env := $v.extraEnv }}
{{- if has $env.name $secretEnv }}
{{- if hasKey $env "value" }}
{{- fail (printf "extraEnv[%d] (%s) is a plaintext credential. Fix: remove it; put the key in the Secret named by modelRepository.credentials.existingSecret (key names: modelRepository.credentials.*Key), which the chart maps with secretKeyRef." $i $env.name) }}
{{- end }}
{{- fail (printf "extraEnv[%d] (%s) is set by the chart from modelRepository.credentials / restrictedApi. Fix: remove it from extraEnv and point those keys at your Secret." $i $env.name) }}
{{- end }}
{{- end }}
{{- /* Flags the chart owns. */}}
{{- $owned := splitList " " (include "emotion-omni-triton.ownedFlags" .) }}
{{- range $i, $arg := $v.triton.extraArgs }}
{{- $flag := regexFind "^--[a-z0-9-]+" $arg }}
{{- if has $flag $owned }}
{{- fail (printf "triton.extraArgs[%d] (%s): %s is set by the chart. Fix: use the dedicated value (model.*, modelRepository.*, restrictedApi.*, service.ports.*, triton.*) instead." $i $arg $flag) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
emotion-omni-triton.fillFile: the chart file named by "file" with its <<placeholders>> replaced: namespace,
service, deployment, release, model, streamModel, the prometheusRule.thresholds, the HPA's queue-time target and a per-release
dashboard uid (files/alerts.yaml, files/dashboard.json). Fails on a placeholder it does not know, so a typo in a
file cannot ship as literal text.
Usage: include "emotion-omni-triton.fillFile" (dict "root" . "file" "files/alerts.yaml")
*/}}
{{- define "emotion-omni-triton.fillFile" -}}
{{- $root := .root }}
{{- $fullname := include "emotion-omni-triton.fullname" $root }}
{{- $t := $root.Values.prometheusRule.thresholds }}
{{- $fills := dict
      "namespace" $root.Release.Namespace
      "service" $fullname
      "deployment" $fullname
      "release" $root.Release.Name
      "model" $root.Values.model.name
      "streamModel" (default "" $root.Values.model.streamName)
      "errorRatio" (toString $t.errorRatio)
      "latencyP95Ms" (toString $t.latencyP95Ms)
      "queueTimeMs" (toString $t.queueTimeMs)
      "pendingRequests" (toString $t.pendingRequests)
      "queueTimeTargetMs" (divf $root.Values.autoscaling.queueTime.targetMicroseconds 1000 | toString)
      "dashboardUid" (printf "omni-triton-%s" (printf "%s/%s" $root.Release.Namespace $fullname | sha256sum | trunc 16)) }}
{{- $text := $root.Files.Get .file }}
{{- if not $text }}
{{- fail (printf "%s is missing from the chart package; it ships with the chart (check .helmignore)." .file) }}
{{- end }}
{{- range $key, $value := $fills }}
{{- $text = replace (printf "<<%s>>" $key) $value $text }}
{{- end }}
{{- with regexFind "<<[A-Za-z]+>>" $text }}
{{- fail (printf "%s uses the unknown placeholder %s; known: %s." $.file . (keys $fills | sortAlpha | join ", ")) }}
{{- end }}
{{- $text }}
{{- end }}

{{/*
Whole cores this pod may use, for OMNI_CPUS (components/cpu.py sizes torch's thread pools by it): the CPU limit,
else the request, rounded up ("1500m" -> 2). Empty when neither is set: the model then reads the cgroup quota.
Without it a pod with no CPU limit sizes torch by the node's cores and collapses under load (issue 8: 3.2x
median latency with one neighbouring core busy).
*/}}
{{- define "emotion-omni-triton.cpus" -}}
{{- $cpu := "" -}}
{{- with .Values.resources.limits }}{{ with .cpu }}{{ $cpu = toString . }}{{ end }}{{ end -}}
{{- if not $cpu }}{{ with .Values.resources.requests }}{{ with .cpu }}{{ $cpu = toString . }}{{ end }}{{ end }}{{ end -}}
{{- if hasSuffix "m" $cpu -}}
{{- max 1 (div (add (atoi (trimSuffix "m" $cpu)) 999) 1000) -}}
{{- else if $cpu -}}
{{- max 1 (int (ceil (float64 $cpu))) -}}
{{- end -}}
{{- end -}}
