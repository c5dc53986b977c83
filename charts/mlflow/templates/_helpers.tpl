{{- define "mlflow.fullname" -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- end }}
{{- define "mlflow.labels" -}}
app.kubernetes.io/name: mlflow
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: mlops-platform
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}
{{- define "mlflow.selector" -}}
app.kubernetes.io/name: mlflow
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
{{- /* Service name in every form a client may send as Host header, with and without a port. */ -}}
{{- define "mlflow.allowedHosts" -}}
{{- $name := include "mlflow.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $hosts := list $name (printf "%s.%s" $name $ns) (printf "%s.%s.svc" $name $ns) (printf "%s.%s.svc.cluster.local" $name $ns) -}}
{{- $out := list -}}
{{- range $hosts }}{{ $out = append $out . }}{{ $out = append $out (printf "%s:*" .) }}{{ end -}}
{{- concat $out .Values.extraAllowedHosts | join "," -}}
{{- end }}
