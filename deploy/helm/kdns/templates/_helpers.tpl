{{- define "kdns.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{- define "kdns.labels" -}}
app.kubernetes.io/name: kdns
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "kdns.corefile" -}}
{{- if .Values.clusterDNS.corefile -}}
{{ .Values.clusterDNS.corefile }}
{{- else -}}
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes {{ .Values.clusterDNS.clusterDomain }} in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success {{ .Values.clusterDNS.clusterDomain }}
       disable denial {{ .Values.clusterDNS.clusterDomain }}
    }
    loop
    reload
    loadbalance
}
{{- end -}}
{{- end -}}

{{- define "kdns.nodeCacheIPs" -}}
{{ .Values.nodeCache.localIP }}{{ if and .Values.nodeCache.interceptServiceIP .Values.clusterDNS.serviceIP }} {{ .Values.clusterDNS.serviceIP }}{{ end }}
{{- end -}}
