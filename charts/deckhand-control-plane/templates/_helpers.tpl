{{/* Names, labels and the checked values of the deckhand control plane chart. */}}

{{- define "dcp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dcp.fullname" -}}
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

{{- define "dcp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "dcp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "dcp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dcp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control-plane
{{- end -}}

{{- define "dcp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dcp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "dcp.image" -}}
{{- printf "%s:%s" .Values.image.repository (toString (.Values.image.tag | default .Chart.AppVersion)) -}}
{{- end -}}

{{/* The Secret and key holding DECKHAND_DATABASE_URL; fails with what to set when neither is given. */}}
{{- define "dcp.databaseSecret" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else if .Values.database.url -}}
{{- printf "%s-database" (include "dcp.fullname" .) -}}
{{- else -}}
{{- fail "database.existingSecret (or database.url) is required: the PostgreSQL URL the replicas share, e.g. kubectl -n <namespace> create secret generic deckhand-database --from-literal=url='postgresql://deckhand:<password>@db.example.com:5432/deckhand' then --set database.existingSecret=deckhand-database" -}}
{{- end -}}
{{- end -}}

{{- define "dcp.databaseSecretKey" -}}
{{- if .Values.database.existingSecret -}}{{ .Values.database.existingSecretKey }}{{- else -}}url{{- end -}}
{{- end -}}

{{- define "dcp.bootstrapSecret" -}}
{{- .Values.bootstrapToken.existingSecret | default (printf "%s-admin-token" (include "dcp.fullname" .)) -}}
{{- end -}}

{{- define "dcp.bootstrapSecretKey" -}}
{{- if .Values.bootstrapToken.existingSecret -}}{{ .Values.bootstrapToken.existingSecretKey }}{{- else -}}token{{- end -}}
{{- end -}}

{{/* Rules across values, checked before anything is rendered (the schema checks each value's shape). */}}
{{- define "dcp.checks" -}}
{{- $_ := include "dcp.databaseSecret" . -}}
{{- $s3 := hasPrefix "s3://" .Values.artifactStore.url -}}
{{- if and (gt (int .Values.replicas) 1) (not $s3) -}}
{{- fail (printf "replicas is %d but artifactStore.url is not an s3:// URL: replicas must share one artifact store (a package uploaded through one replica is downloaded through another). Set --set artifactStore.url=s3://<bucket>/<prefix> (docs/control-plane-helm.md), or --set replicas=1." (int .Values.replicas)) -}}
{{- end -}}
{{- if and .Values.persistence.existingClaim $s3 -}}
{{- fail "persistence.existingClaim is for the artifacts of a store without S3; with artifactStore.url=s3://... leave it empty" -}}
{{- end -}}
{{- if and .Values.artifactStore.url (not $s3) -}}
{{- fail (printf "artifactStore.url %q is not an s3:// URL: leave it empty to keep packages in the pod's data directory (persistence.existingClaim), or give s3://<bucket>/<prefix>" .Values.artifactStore.url) -}}
{{- end -}}
{{- end -}}
