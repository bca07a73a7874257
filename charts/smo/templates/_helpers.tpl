{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "smo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: fullnameOverride, else <release>-<chart> (the release alone if it contains the chart name). */}}
{{- define "smo.fullname" -}}
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

{{/* chart label value: <name>-<version>. */}}
{{- define "smo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels; call with (dict "ctx" $ "component" "api"). */}}
{{- define "smo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "smo.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Common labels; call with (dict "ctx" $ "component" "api"). */}}
{{- define "smo.labels" -}}
helm.sh/chart: {{ include "smo.chart" .ctx }}
{{ include "smo.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: smo
{{- end -}}

{{/* Image reference; the tag defaults to the chart's appVersion. */}}
{{- define "smo.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}

{{/* ServiceAccount name. */}}
{{- define "smo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "smo.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* SMO_DATABASE_URL: from an existing Secret, else the plain (password-less) url, else fail. */}}
{{- define "smo.databaseEnv" -}}
- name: SMO_DATABASE_URL
{{- if .Values.database.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret | quote }}
      key: {{ .Values.database.key | quote }}
{{- else if .Values.database.url }}
  value: {{ .Values.database.url | quote }}
{{- else }}
{{- fail "set database.existingSecret (recommended) or database.url" }}
{{- end }}
{{- end -}}

{{/* Environment shared by every server role: database, Karmada, monitoring, scaling, retention. */}}
{{- define "smo.commonEnv" -}}
{{ include "smo.databaseEnv" . }}
- name: SMO_RETENTION
  value: {{ .Values.retention | quote }}
- name: SMO_AUDIT_RETENTION
  value: {{ .Values.auditRetention | quote }}
- name: SMO_LOG_FORMAT
  value: {{ .Values.logging.format | quote }}
- name: RUST_LOG
  value: {{ .Values.logging.level | quote }}
- name: SMO_SCALING_INTERVAL
  value: {{ .Values.scaling.interval | quote }}
- name: SMO_RATE_WINDOW
  value: {{ .Values.scaling.rateWindow | quote }}
- name: SMO_ALERT_RULES
  value: {{ .Values.alertRules.mode | quote }}
{{- if .Values.alertRules.rulesDir }}
- name: SMO_RULES_DIR
  value: {{ .Values.alertRules.rulesDir | quote }}
{{- end }}
{{- if .Values.karmada.kubeconfigSecret }}
- name: SMO_KARMADA_KUBECONFIG
  value: /etc/smo/karmada/kubeconfig
{{- end }}
{{- if .Values.prometheus.url }}
- name: SMO_PROMETHEUS_URL
  value: {{ .Values.prometheus.url | quote }}
{{- end }}
{{- if .Values.grafana.url }}
- name: SMO_GRAFANA_URL
  value: {{ .Values.grafana.url | quote }}
{{- end }}
{{- with .Values.prometheus.existingSecret }}
{{- include "smo.optionalSecretEnv" (dict "env" "SMO_PROMETHEUS_TOKEN" "secret" . "key" $.Values.prometheus.tokenKey) }}
{{- include "smo.optionalSecretEnv" (dict "env" "SMO_PROMETHEUS_USER" "secret" . "key" $.Values.prometheus.userKey) }}
{{- include "smo.optionalSecretEnv" (dict "env" "SMO_PROMETHEUS_PASSWORD" "secret" . "key" $.Values.prometheus.passwordKey) }}
{{- end }}
{{- with .Values.grafana.existingSecret }}
{{- include "smo.optionalSecretEnv" (dict "env" "SMO_GRAFANA_TOKEN" "secret" . "key" $.Values.grafana.tokenKey) }}
{{- include "smo.optionalSecretEnv" (dict "env" "SMO_GRAFANA_USER" "secret" . "key" $.Values.grafana.userKey) }}
{{- include "smo.optionalSecretEnv" (dict "env" "SMO_GRAFANA_PASSWORD" "secret" . "key" $.Values.grafana.passwordKey) }}
{{- end }}
{{- if .Values.api.token.existingSecret }}
- name: SMO_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.api.token.existingSecret | quote }}
      key: {{ .Values.api.token.key | quote }}
{{- end }}
{{- end -}}

{{/* One credential from a Secret key that may be absent (a token, or a user and password);
     call with (dict "env" <variable> "secret" <Secret name> "key" <key>). */}}
{{- define "smo.optionalSecretEnv" }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret | quote }}
      key: {{ .key | quote }}
      optional: true
{{- end -}}

{{/* Volumes of every server pod: writable /tmp and $HOME (helm caches) and the Karmada kubeconfig. */}}
{{- define "smo.volumes" -}}
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
{{- if .Values.karmada.kubeconfigSecret }}
- name: karmada-kubeconfig
  secret:
    secretName: {{ .Values.karmada.kubeconfigSecret | quote }}
    items:
      - key: {{ .Values.karmada.kubeconfigKey | quote }}
        path: kubeconfig
{{- end }}
{{- end -}}

{{/* Mounts matching smo.volumes. */}}
{{- define "smo.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /home/smo
{{- if .Values.karmada.kubeconfigSecret }}
- name: karmada-kubeconfig
  mountPath: /etc/smo/karmada
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod-level security context: the image's non-root user (uid 10001). */}}
{{- define "smo.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security context. */}}
{{- define "smo.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}
