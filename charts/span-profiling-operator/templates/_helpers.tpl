{{- define "spo.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "spo.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: span-profiling-operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "spo.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "spo.webhookService" -}}{{ include "spo.fullname" . }}-webhook{{- end -}}
{{- define "spo.certSecret" -}}{{ default (printf "%s-webhook-tls" (include "spo.fullname" .)) .Values.certificates.secretName }}{{- end -}}
{{- define "spo.image" -}}{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}{{- end -}}
{{- define "spo.agentImage" -}}{{ .Values.agent.image.repository }}:{{ default .Chart.AppVersion .Values.agent.image.tag }}{{- end -}}
{{- /* The admission check runs only where the chart can fence the operator's create permission to dry runs (a ValidatingAdmissionPolicy, Kubernetes 1.30+). */ -}}
{{- define "spo.admissionCheck" -}}{{ if and .Values.admissionCheck.enabled .Values.admissionPolicy.enabled (semverCompare ">=1.30-0" .Capabilities.KubeVersion.Version) }}true{{ end }}{{- end -}}
