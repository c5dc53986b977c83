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
{{- /* repository:tag, or repository:tag@digest when a digest is pinned. */ -}}
{{- define "s3.image" -}}
{{- .repository }}:{{ .tag }}{{ with .digest }}@{{ . }}{{ end }}
{{- end }}
{{- define "s3.flavour" -}}
{{- $f := .Values.flavour -}}
{{- if not (has $f (list "seaweedfs" "localstack" "minio")) -}}
{{- fail (printf "charts/s3 values: flavour=%q is not one of seaweedfs, localstack, minio" $f) -}}
{{- end -}}
{{- $f -}}
{{- end }}
{{- /* The S3 port inside the pod per flavour; the Service maps .Values.service.port onto it. */ -}}
{{- define "s3.containerPort" -}}
{{- get (dict "seaweedfs" 8333 "localstack" 4566 "minio" 9000) (include "s3.flavour" .) -}}
{{- end }}
{{- define "s3.credentialsEnv" -}}
- name: S3_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ .Values.auth.existingSecret }}, key: {{ .Values.auth.accessKeyKey }}}
- name: S3_SECRET_KEY
  valueFrom:
    secretKeyRef: {name: {{ .Values.auth.existingSecret }}, key: {{ .Values.auth.secretKeyKey }}}
{{- end }}
{{- /* The bucket Job's pod template. The Job's name carries this template's hash: a Job's pod template is
       immutable, so any change (image, buckets, resources, ...) must create a new Job, never patch one. */ -}}
{{- define "s3.bucketJobTemplate" -}}
metadata:
  labels:
    app.kubernetes.io/name: s3-buckets
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  restartPolicy: OnFailure
  automountServiceAccountToken: false
  securityContext: {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: create-buckets
      image: {{ include "s3.image" .Values.bucketJob.image | quote }}
      imagePullPolicy: {{ .Values.imagePullPolicy }}
      securityContext: {{- toYaml .Values.containerSecurityContext | nindent 8 }}
      command: ["python", "-c"]
      args:
        - |
          import os, sys, time
          import boto3, botocore.exceptions as e
          s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1",
                            aws_access_key_id=os.environ["S3_ACCESS_KEY"],
                            aws_secret_access_key=os.environ["S3_SECRET_KEY"])
          deadline = time.monotonic() + 600
          while True:
              try:
                  s3.list_buckets()
                  break
              except (e.EndpointConnectionError, e.ClientError) as exc:
                  if time.monotonic() > deadline:
                      sys.exit(f"S3 at {os.environ['S3_ENDPOINT']} not ready: {exc}")
                  print("waiting for S3:", exc, flush=True)
                  time.sleep(2)
          for bucket in os.environ["BUCKETS"].split():
              try:
                  s3.head_bucket(Bucket=bucket)
                  print("bucket", bucket, "exists")
              except e.ClientError:
                  s3.create_bucket(Bucket=bucket)
                  print("bucket", bucket, "created")
      env:
        {{- include "s3.credentialsEnv" . | nindent 8 }}
        - {name: S3_ENDPOINT, value: "http://{{ include "s3.fullname" . }}:{{ .Values.service.port }}"}
        - {name: BUCKETS, value: {{ join " " .Values.buckets | quote }}}
        - {name: HOME, value: /tmp}
      resources: {{- toYaml .Values.bucketJob.resources | nindent 8 }}
      volumeMounts:
        - {name: tmp, mountPath: /tmp}
  volumes:
    - {name: tmp, emptyDir: {}}
{{- end }}
