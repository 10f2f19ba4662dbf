{{/* Names, labels and the checked required values of the deckhand management agent chart. */}}

{{- define "dh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dh.fullname" -}}
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

{{- define "dh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "dh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "dh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: management-agent
{{- end -}}

{{- define "dh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dh.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "dh.imageBuilderServiceAccountName" -}}
{{- if .Values.imageBuilder.serviceAccount.create -}}
{{- default (printf "%s-image-builder" (include "dh.fullname" .)) .Values.imageBuilder.serviceAccount.name -}}
{{- else -}}
{{- .Values.imageBuilder.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Required values; deckhand.* aliases win over the documented datarobot.* names. */}}
{{- define "dh.url" -}}
{{- required "deckhand.url is required: the control plane URL as pods reach it, e.g. --set deckhand.url=http://deckhand.mlops.svc:8000" .Values.deckhand.url -}}
{{- end -}}

{{- define "dh.apiSecretName" -}}
{{- $name := .Values.deckhand.apiSecretName | default .Values.datarobot.apiSecretName -}}
{{- required "deckhand.apiSecretName (or datarobot.apiSecretName) is required: the Secret holding the agent's API token, created with: kubectl -n <namespace> create secret generic deckhand-api-token --from-literal=secret=<TOKEN>" $name -}}
{{- end -}}

{{- define "dh.predictionEnvId" -}}
{{- $id := .Values.deckhand.predictionEnvId | default .Values.datarobot.predictionEnvId -}}
{{- required "deckhand.predictionEnvId (or datarobot.predictionEnvId) is required: the prediction environment id from `deckhand env create --platform kubernetes`" $id -}}
{{- end -}}

{{- define "dh.ppsImage" -}}
{{- required "imageBuilder.ppsImage is required: the prediction-server base image (deckhand-pps) pushed to a registry the cluster can pull from" .Values.imageBuilder.ppsImage -}}
{{- end -}}

{{- define "dh.generatedImageRepository" -}}
{{- required "imageBuilder.generatedImageRepository is required: the repository model images are pushed to (registry/path, no tag)" .Values.imageBuilder.generatedImageRepository -}}
{{- end -}}

{{- define "dh.outfacingUrlRoot" -}}
{{- required "predictionServer.outfacingUrlRoot is required: where models are reached from outside, e.g. http://models.example.com/deployments/" .Values.predictionServer.outfacingUrlRoot -}}
{{- end -}}

{{- define "dh.agentImage" -}}
{{- printf "%s:%s" .Values.managementAgent.repository (toString (.Values.managementAgent.tag | default .Chart.AppVersion)) -}}
{{- end -}}

{{- define "dh.imagePullSecrets" -}}
{{- range . }}
- name: {{ if kindIs "string" . }}{{ . }}{{ else }}{{ .name }}{{ end }}
{{- end }}
{{- end -}}
