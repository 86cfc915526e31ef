#!/usr/bin/env bash
# Makes the certificates the security tests use, at test time (no private key is committed):
#   ca.pem, ca2.pem                        two unrelated CAs
#   server.{pem,key}       CA 1, SAN DNS:localhost and IP:127.0.0.1 (serverAuth)
#   server-ca2.{pem,key}   CA 2, same names (what the agent rotates to)
#   wrong-name.{pem,key}   CA 1, SAN DNS:wrong.example only
#   client.{pem,key}       CA 1 (clientAuth)
#   client-ca2.{pem,key}   CA 2: a client from another CA
#   client-expired.{pem,key} CA 1, valid only in January 2020
#   server-expired.{pem,key} CA 1, server names as above, valid only in January 2020
# Usage: make_test_certs.sh OUTDIR
set -euo pipefail
out=${1:?usage: make_test_certs.sh OUTDIR}
mkdir -p "$out"
cd "$out"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

ca() {  # ca NAME CN
  key "$1"
  openssl req -x509 -new -key "$1.key" -sha256 -days 30 -subj "/CN=$2" -out "$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  # `openssl ca` state, so a certificate can be dated in the past.
  mkdir -p "$1.db"
  : >"$1.db/index.txt"
  echo 01 >"$1.db/serial"
  cat >"$1.cnf" <<CNF
[ca]
default_ca = this
[this]
database = $1.db/index.txt
serial = $1.db/serial
new_certs_dir = $1.db
certificate = $1.pem
private_key = $1.key
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
CNF
}

leaf() {  # leaf NAME CA CN EXTENSIONS [openssl-ca date flags...]
  local name=$1 ca=$2 cn=$3 ext=$4
  shift 4
  key "$name"
  openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr"
  printf '%b\n' "$ext" >"$name.ext"
  local dates=("$@")
  [ ${#dates[@]} -gt 0 ] || dates=(-days 30)
  openssl ca -batch -notext -config "$ca.cnf" -in "$name.csr" -out "$name.pem" \
    -extfile "$name.ext" "${dates[@]}" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

server_ext='basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth'
client_ext='basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth'

ca ca "sandbox test CA"
ca ca2 "sandbox other test CA"
leaf server ca localhost "$server_ext\nsubjectAltName=DNS:localhost,IP:127.0.0.1"
leaf server-ca2 ca2 localhost "$server_ext\nsubjectAltName=DNS:localhost,IP:127.0.0.1"
leaf wrong-name ca wrong.example "$server_ext\nsubjectAltName=DNS:wrong.example"
leaf client ca sandbox-test-client "$client_ext"
leaf client-ca2 ca2 sandbox-other-client "$client_ext"
leaf server-expired ca localhost "$server_ext\nsubjectAltName=DNS:localhost,IP:127.0.0.1" \
  -startdate 20200101000000Z -enddate 20200201000000Z
leaf client-expired ca sandbox-expired-client "$client_ext" \
  -startdate 20200101000000Z -enddate 20200201000000Z
chmod 600 ./*.key
