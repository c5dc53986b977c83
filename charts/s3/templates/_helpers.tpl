{{- define "s3.fullname" -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- end }}
{{- define "s3.labels" -}}
app.kubernetes.io/name: s3
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: mlops-platform
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}
{{- define "s3.selector" -}}
app.kubernetes.io/name: s3
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
{{- define "s3.credentialsEnv" -}}
- name: S3_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ .Values.auth.existingSecret }}, key: {{ .Values.auth.accessKeyKey }}}
- name: S3_SECRET_KEY
  valueFrom:
    secretKeyRef: {name: {{ .Values.auth.existingSecret }}, key: {{ .Values.auth.secretKeyKey }}}
{{- end }}
