#!/bin/sh
# A private CA and the certificates for Temporal with mutual TLS (docker-compose.mtls.yml):
#
#   deploy/temporal-tls/make-certs.sh DIR [SERVER_NAME]      # SERVER_NAME default: temporal
#
# DIR/ca.pem                       the CA: servers and clients trust only what it signed
# DIR/server.pem, DIR/server.key   Temporal's frontend and internode certificate, for
#                                  SERVER_NAME (serverAuth and clientAuth: its own services
#                                  call each other with it)
# DIR/client.pem, DIR/client.key   workers, the starter, the Web UI and admin tools
# DIR/ca-key/ca.key                signs new certificates; mounted nowhere, keep it offline
#
# Without an authorizer (Temporal's default) any certificate this CA signed has full
# access to every namespace: the CA is the access list. Keys are readable by all (0644)
# because the containers run as their own uids and read them from bind mounts; keep DIR
# on a host only operators can log in to. An existing DIR/ca.pem is reused, so running
# it again renews the server and client certificates under the same CA.
set -eu
dir=${1:?usage: make-certs.sh DIR [SERVER_NAME]}
name=${2:-temporal}
days=${CERT_DAYS:-365}
command -v openssl >/dev/null || { echo "make-certs.sh: openssl is required" >&2; exit 2; }
mkdir -p "$dir/ca-key"
chmod 700 "$dir/ca-key"
cd "$dir"
ext=$(mktemp)
trap 'rm -f "$ext" server.csr client.csr' EXIT

if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -days $((days * 5)) -subj "/CN=podcast-temporal-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout ca-key/ca.key -out ca.pem 2>/dev/null
  chmod 600 ca-key/ca.key
fi

issue() {  # issue NAME CN EXTENDED_KEY_USAGE [SAN]
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$3"
    if [ -n "${4:-}" ]; then echo "subjectAltName=$4"; fi
  } >"$ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key/ca.key -CAcreateserial -sha256 \
    -days "$days" -extfile "$ext" -out "$1.pem" 2>/dev/null
  chmod 644 "$1.key" "$1.pem"
}

issue server "$name" serverAuth,clientAuth "DNS:$name"
issue client podcast-client clientAuth
rm -f ca.srl
echo "certificates for server name '$name' in $(pwd): ca.pem server.pem/.key client.pem/.key"
