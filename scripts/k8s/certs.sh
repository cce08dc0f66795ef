#!/usr/bin/env bash
# certs.sh DIR NODE... : a throw-away PKI for the harness cluster in DIR (CA, service-account key pair, the
# apiserver's serving certificate, client certificates of the control plane, each kubelet, the CSI sidecars and
# an admin) and a kubeconfig per client. Existing files are kept, so it can run again.
# ECDSA P-256 keys throughout (Kubernetes takes them for serving, client and service-account signing keys): an RSA
# 2048 key costs ~0.5-2.5 s of CPU on a loaded 2-core host, and the ten of them made 7-26 s of every up.sh.
set -euo pipefail
dir=$1; shift; apiserver="https://127.0.0.1:${APISERVER_PORT:-16443}"
mkdir -p "$dir"; cd "$dir"
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
[ -f ca.key ] || { newkey ca.key
  openssl req -x509 -new -nodes -key ca.key -subj "/CN=flocker-k8s-harness-ca" -days 3650 -out ca.crt 2>/dev/null; }
[ -f sa.key ] || { newkey sa.key; openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null; }
# cert NAME CN ORG [SAN] : a server+client certificate when SAN is given, else a client certificate
cert() { local name=$1 cn=$2 org=$3 san=${4:-} subj
  [ -f "$name.crt" ] && return 0
  subj="/CN=$cn"; [ -n "$org" ] && subj="/O=$org/CN=$cn"
  newkey "$name.key"
  openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr" 2>/dev/null
  { echo "basicConstraints=CA:FALSE"; echo "keyUsage=critical,digitalSignature"
    if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
    else echo "extendedKeyUsage=clientAuth"; fi; } > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"; }
kubeconfig() { local name=$1
  cat > "$name.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: flocker-k8s, cluster: {server: "$apiserver", certificate-authority: $dir/ca.crt}}]
users: [{name: $name, user: {client-certificate: $dir/$name.crt, client-key: $dir/$name.key}}]
contexts: [{name: flocker-k8s, context: {cluster: flocker-k8s, user: $name}}]
current-context: flocker-k8s
KC
}
cert apiserver kube-apiserver "" "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:10.96.0.1"
cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
cert admin kubernetes-admin system:masters
cert controller-manager system:kube-controller-manager ""
cert scheduler system:kube-scheduler ""
cert csi system:flocker-csi-sidecars system:masters     # the sidecars as cluster-admin: a test cluster
for n in admin controller-manager scheduler csi; do kubeconfig $n; done
for n in "$@"; do cert "kubelet-$n" "system:node:$n" system:nodes; kubeconfig "kubelet-$n"; done
