#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
#
# Certificates for one local cluster, made with openssl; sourced, never run. Each
# cluster gets its own CA, so a client of one cluster cannot talk to the other by
# mistake, and TLS is verified everywhere (no client skips verification).
set -euo pipefail

# The certificates live as long as the cluster (cluster-down removes them), yet a
# long validity keeps a cluster that runs for days from failing in odd ways.
PKI_DAYS=3650

# pki_key FILE -> an RSA key, readable by the owner only.
pki_key() {
  (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null)
}

# pki_ca DIR NAME COMMON_NAME -> DIR/NAME.{key,crt}
pki_ca() {
  local dir=$1 name=$2 cn=$3
  pki_key "$dir/$name.key"
  openssl req -x509 -new -key "$dir/$name.key" -sha256 -days "$PKI_DAYS" \
    -subj "/CN=$cn" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$dir/$name.crt" 2>/dev/null
}

# pki_cert DIR NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES] [CA] -> DIR/NAME.{key,crt}
# signed by DIR/CA (default: ca).
pki_cert() {
  local dir=$1 name=$2 subject=$3 eku=$4 san=${5:-} ca=${6:-ca}
  pki_key "$dir/$name.key"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -n "$san" ]] && echo "subjectAltName=$san"
  } >"$dir/$name.ext"
  openssl req -new -key "$dir/$name.key" -subj "$subject" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" -CAcreateserial \
    -sha256 -days "$PKI_DAYS" -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
}

# pki_cluster DIR -> everything one cluster needs:
#   ca                       signs every certificate below, trusted by every client
#   serving                  HTTPS of kube-apiserver, kube-controller-manager,
#                            kube-scheduler and kwok, all on 127.0.0.1
#   admin                    system:masters, for people, tests and the controller
#   kube-controller-manager  the user the RBAC bootstrap policy expects
#   kube-scheduler           likewise
#   kwok                     system:masters: as the kubelet of many nodes it writes
#                            the status of any Node and Pod, which the Node authorizer
#                            would only allow one node at a time
#   sa                       service-account token signing key pair
#   front-proxy-ca, front-proxy-client
#                            the request-header CA the API server publishes in
#                            kube-system/extension-apiserver-authentication and the
#                            client it uses towards aggregated API servers. Without
#                            it every component that delegates authentication (the
#                            controller manager, the scheduler) logs errors about a
#                            missing CA bundle. A CA of its own, as kubeadm does: a
#                            client certificate of the main CA must not be able to
#                            assert any user name through request headers.
pki_cluster() {
  local dir=$1
  mkdir -p "$dir"
  pki_ca "$dir" ca mcm-provider-local-ca
  pki_ca "$dir" front-proxy-ca mcm-provider-local-front-proxy-ca
  pki_cert "$dir" front-proxy-client "/CN=front-proxy-client" clientAuth "" front-proxy-ca
  # Besides loopback, the names in-cluster clients use for the API server, so the
  # certificate also holds for the kubernetes Service (first IP of the service range).
  pki_cert "$dir" serving "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  pki_cert "$dir" admin "/O=system:masters/CN=kubernetes-admin" clientAuth
  pki_cert "$dir" kube-controller-manager "/CN=system:kube-controller-manager" clientAuth
  pki_cert "$dir" kube-scheduler "/CN=system:kube-scheduler" clientAuth
  pki_cert "$dir" kwok "/O=system:masters/CN=kwok" clientAuth
  pki_key "$dir/sa.key"
  openssl pkey -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  rm -f "$dir"/*.srl
}

# kubeconfig FILE SERVER PKI_DIR USER NAME -> a kubeconfig for USER's certificate with the
# certificates embedded, so the file works from any directory and in any client;
# NAME names its cluster and context.
kubeconfig() {
  local file=$1 server=$2 dir=$3 user=$4 name=$5
  (umask 077 && cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$dir/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$dir/$user.crt")
    client-key-data: $(base64 -w0 <"$dir/$user.key")
contexts:
- name: $name
  context:
    cluster: $name
    user: $user
current-context: $name
EOF
  )
}
