#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Makes what docker-compose.production.yml needs beside scripts/compose-secrets.sh's secrets:
# a private CA and TLS certificates for the three Kafka brokers and PostgreSQL, the brokers'
# SASL users (PLAIN over TLS) and the programs' sslmode=verify-full connection string. All under
# ./secrets/ (never committed), mode 600 (the CA certificate 644); when this runs as root, the
# files the Kafka image reads belong to its user (uid 1000) and the programs' to uid 10001.
# Existing files are kept: safe to run again. Needs openssl.
#
#   secrets/tls/ca.crt, ca.key                 the CA (keep ca.key offline in real use)
#   secrets/tls/postgres.crt, postgres.key     PostgreSQL's certificate (DNS name postgres)
#   secrets/kafka/kafka-N.p12                  broker N's key and certificate (kafka, kafka-2,
#                                              kafka-3 and localhost), keystore_password
#   secrets/kafka/kafka_server_jaas.conf       the brokers' login and the users they accept
#   secrets/kafka/admin.properties             the CLI's client settings (topics-init)
#   secrets/kafka_client_password              the programs' password (user otp)
#   secrets/database_url_verify_full           postgresql://...?sslmode=verify-full&sslrootcert=
#
# OTP_COMPOSE_DIR chooses another folder than the repository root; DAYS the validity (825).
set -euo pipefail

dir=${OTP_COMPOSE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
days=${DAYS:-825}
KAFKA_UID=1000
command -v openssl >/dev/null || { echo "compose-certs: openssl is needed" >&2; exit 1; }
[[ -s "$dir/secrets/postgres_password" ]] ||
    { echo "compose-certs: run scripts/compose-secrets.sh first" >&2; exit 1; }

umask 077
tls=$dir/secrets/tls
kafka=$dir/secrets/kafka
mkdir -p "$tls" "$kafka"
random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
say() { echo "compose-certs: $*" >&2; }

if [[ ! -s "$tls/ca.crt" ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
        -subj "/CN=voice-otp compose CA" -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
    say "wrote secrets/tls/ca.crt"
fi

# cert NAME DNS...: a key and a certificate for the DNS names, signed by the CA.
cert() {
    local name=$1 san
    shift
    [[ -s "$tls/$name.crt" ]] && { say "keeping secrets/tls/$name.crt"; return; }
    san=$(printf 'DNS:%s,' "$@")
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
        -keyout "$tls/$name.key" -out "$tls/$name.csr" 2>/dev/null
    openssl x509 -req -in "$tls/$name.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
        -CAcreateserial -days "$days" -out "$tls/$name.crt" \
        -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' \
            "${san%,}") 2>/dev/null
    rm -f "$tls/$name.csr"
    say "wrote secrets/tls/$name.crt ($*)"
}

cert postgres postgres localhost
[[ -s "$kafka/keystore_password" ]] || random_hex 24 > "$kafka/keystore_password"
for n in 1 2 3; do
    host=kafka
    [[ $n == 1 ]] || host=kafka-$n
    cert "kafka-$n" "$host" localhost
    if [[ ! -s "$kafka/kafka-$n.p12" ]]; then
        openssl pkcs12 -export -in "$tls/kafka-$n.crt" -inkey "$tls/kafka-$n.key" \
            -certfile "$tls/ca.crt" -name "kafka-$n" -out "$kafka/kafka-$n.p12" \
            -passout "file:$kafka/keystore_password"
        say "wrote secrets/kafka/kafka-$n.p12"
    fi
done
cp "$tls/ca.crt" "$kafka/ca.crt"

if [[ ! -s "$kafka/kafka_server_jaas.conf" ]]; then
    broker_pw=$(random_hex 24)
    admin_pw=$(random_hex 24)
    [[ -s "$dir/secrets/kafka_client_password" ]] ||
        random_hex 24 > "$dir/secrets/kafka_client_password"
    otp_pw=$(cat "$dir/secrets/kafka_client_password")
    cat > "$kafka/kafka_server_jaas.conf" <<JAAS
KafkaServer {
    org.apache.kafka.common.security.plain.PlainLoginModule required
    username="broker" password="$broker_pw"
    user_broker="$broker_pw" user_admin="$admin_pw" user_otp="$otp_pw";
};
JAAS
    cat > "$kafka/admin.properties" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin_pw";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/secrets/ca.crt
PROPS
    say "wrote secrets/kafka/kafka_server_jaas.conf, admin.properties, secrets/kafka_client_password"
fi

if [[ ! -s "$dir/secrets/database_url_verify_full" ]]; then
    printf 'postgresql://otp:%s@postgres:5432/otp?sslmode=verify-full&sslrootcert=/run/secrets/tls_ca\n' \
        "$(cat "$dir/secrets/postgres_password")" > "$dir/secrets/database_url_verify_full"
    say "wrote secrets/database_url_verify_full"
fi

# The CA certificate is public; the files the programs (uid 10001) read are theirs.
chmod 644 "$tls/ca.crt"
if [[ $(id -u) -eq 0 ]]; then
    chown -R "$KAFKA_UID:$KAFKA_UID" "$kafka"
    chown 10001:10001 "$dir/secrets/kafka_client_password" "$dir/secrets/database_url_verify_full"
else
    say "not root: as root, chown -R $KAFKA_UID $kafka and chown 10001" \
        "secrets/kafka_client_password secrets/database_url_verify_full"
fi
