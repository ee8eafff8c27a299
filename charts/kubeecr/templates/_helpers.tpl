{{/*
Names. The release name when it contains "kubeecr" (`helm install kubeecr ...` names everything
kubeecr, as the kustomize install does), else <release>-kubeecr. Cluster-scoped objects (the
ClusterRole and its binding, the admission policy) carry it too, so a second release beside the
first gets objects of its own.
*/}}
{{- define "kubeecr.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
Labels. The first two are the kustomize install's (manifests/base/kustomization.yaml), on every
object and on the Job and Pod templates, so `kubectl get pods -l app.kubernetes.io/name=kubeecr`
finds the runs either way. The others are Helm's usual ones.
*/}}
{{- define "kubeecr.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/component: credential-refresher
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The image: repository@digest when a digest is given (it wins), else repository:tag. */}}
{{- define "kubeecr.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
The annotation key in effect: config.annotation, else the program's default. The admission policy
guards this key, and with the policy the CronJob passes it explicitly, as the kustomize component
does, so the key the policy guards is the key the program serves.
*/}}
{{- define "kubeecr.annotationKey" -}}
{{- .Values.config.annotation | default "deft.com/kubeecr" -}}
{{- end -}}

{{/* The namespace opt-in's label, as manifests/components/namespace-opt-in sets it. */}}
{{- define "kubeecr.optInLabel" -}}kubeecr.deft.com/enabled{{- end -}}

{{/*
Combinations that would install half a feature fail here, with what to change (the kustomize
components refuse the same combinations).
*/}}
{{- define "kubeecr.validate" -}}
{{- $c := .Values.config -}}
{{- if and .Values.namespaceOptIn.enabled (not .Values.admission.enabled) -}}
{{- fail "namespaceOptIn.enabled=true needs admission.enabled=true: the opt-in adds a rule to the admission policy (as manifests/components/namespace-opt-in extends manifests/components/admission)" -}}
{{- end -}}
{{- if and .Values.namespaceOptIn.enabled $c.namespaceSelector -}}
{{- fail "config.namespaceSelector and namespaceOptIn.enabled both set --namespace-selector: drop config.namespaceSelector (the opt-in sets kubeecr.deft.com/enabled=true)" -}}
{{- end -}}
{{- if and .Values.provision.enabled (not .Values.namespaceOptIn.enabled) -}}
{{- fail "provision.enabled=true needs namespaceOptIn.enabled=true: it creates Secrets only in opted-in namespaces (as manifests/components/provision needs manifests/components/namespace-opt-in)" -}}
{{- end -}}
{{- if and .Values.provision.enabled (not .Values.provision.registries) -}}
{{- fail "provision.enabled=true needs provision.registries: the annotation value of the Secrets it creates, e.g. 123456789012/us-west-2" -}}
{{- end -}}
{{- if and .Values.provision.enabled $c.provision -}}
{{- fail "config.provision and provision.enabled both set --provision: drop config.provision (provision.secretName and provision.registries set it)" -}}
{{- end -}}
{{- if and $c.namespace $c.excludeNamespace -}}
{{- fail "config.namespace and config.excludeNamespace cannot be combined: list the namespaces to include, or the ones to skip" -}}
{{- end -}}
{{- if and (has "Deny" .Values.admission.validationActions) (has "Warn" .Values.admission.validationActions) -}}
{{- fail "admission.validationActions cannot hold both Deny and Warn: use [Deny], [Warn], [Audit], [Deny, Audit] or [Warn, Audit]" -}}
{{- end -}}
{{- end -}}

{{/*
The container's env: one KUBEECR_<FLAG> variable per config value that is set, named as the
program names them (refreshWindow is KUBEECR_REFRESH_WINDOW). Lists are comma-separated; false,
empty and null leave the program's default. logFormat is the container's argument instead (see
cronjob.yaml). Sorted by name; the schema admits only the program's flags.
*/}}
{{- define "kubeecr.env" -}}
{{- $c := deepCopy .Values.config -}}
{{- $_ := unset $c "logFormat" -}}
{{- if .Values.admission.enabled -}}
{{- $_ := set $c "annotation" (include "kubeecr.annotationKey" .) -}}
{{- end -}}
{{- if .Values.namespaceOptIn.enabled -}}
{{- $_ := set $c "namespaceSelector" (printf "%s=true" (include "kubeecr.optInLabel" .)) -}}
{{- end -}}
{{- if .Values.provision.enabled -}}
{{- $_ := set $c "provision" (printf "%s=%s" .Values.provision.secretName .Values.provision.registries) -}}
{{- end -}}
{{- if .Values.roles.enabled -}}
{{- $_ := set $c "roles" "/etc/kubeecr/roles.yaml" -}}
{{- end -}}
{{- range $key := keys $c | sortAlpha -}}
{{- $v := get $c $key -}}
{{- $value := "" -}}
{{- if kindIs "slice" $v -}}
{{- $value = join "," $v -}}
{{- else if kindIs "bool" $v -}}
{{- $value = ternary "true" "" $v -}}
{{- else if or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v) -}}
{{- $value = $v | int | toString -}}
{{- else if kindIs "string" $v -}}
{{- $value = $v -}}
{{- end -}}
{{- if ne $value "" }}
- name: {{ printf "KUBEECR_%s" ($key | snakecase | upper) }}
  value: {{ $value | quote }}
{{- end -}}
{{- end -}}
{{- end -}}
