#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Writes the files docker-compose.yml reads its secrets from (./secrets/, mode 600) and an .env
# with the non-secret settings it needs. Existing files are kept, so it is safe to run again.
#
#   scripts/compose-secrets.sh          real VoIPBin: VOIPBIN_ACCESS_KEY, VOIPBIN_WEBHOOK_SECRET
#                                       (GET /v1.0/customer) and OTP_CALLER_ID from the environment
#   scripts/compose-secrets.sh --demo   the VoIPBin simulator (docker compose --profile demo up)
#
# It prints the verifier API key once (only its SHA-256 is configured) and keeps it in
# secrets/api_key. OTP_COMPOSE_DIR chooses another folder than the repository root.
set -euo pipefail

dir=${OTP_COMPOSE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
demo=0
case "${1:-}" in
    --demo) demo=1 ;;
    "") ;;
    *) echo "usage: $0 [--demo]" >&2; exit 2 ;;
esac

# The simulator's own credentials (tests/sim): not secrets.
SIM_ACCESS_KEY=vb_SIMxSIMxSIMxSIMxSIMxSIMxSIMxSIMx
SIM_WEBHOOK_SECRET=c2ltdWxhdG9yLXdlYmhvb2stc2VjcmV0

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

umask 077
mkdir -p "$dir/secrets"

# put NAME VALUE: writes secrets/NAME unless it exists.
put() {
    if [[ -e "$dir/secrets/$1" ]]; then
        echo "compose-secrets: keeping secrets/$1" >&2
    else
        printf '%s\n' "$2" > "$dir/secrets/$1"
        echo "compose-secrets: wrote secrets/$1" >&2
    fi
}

if [[ $demo == 1 ]]; then
    access_key=$SIM_ACCESS_KEY
    webhook_secret=$SIM_WEBHOOK_SECRET
    caller_id=${OTP_CALLER_ID:-+15550100000}
else
    access_key=${VOIPBIN_ACCESS_KEY:?set VOIPBIN_ACCESS_KEY (or use --demo)}
    webhook_secret=${VOIPBIN_WEBHOOK_SECRET:?set VOIPBIN_WEBHOOK_SECRET (GET /v1.0/customer), or use --demo}
    caller_id=${OTP_CALLER_ID:?set OTP_CALLER_ID, a number your VoIPBin account owns (or use --demo)}
fi

if [[ ! -e "$dir/secrets/postgres_password" ]]; then
    pw=$(random_hex 24)
    put postgres_password "$pw"
    put database_url "postgresql://otp:$pw@postgres:5432/otp"
fi
put hash_key "$(random_hex 32)"
put webhook_secret "$webhook_secret"
put voipbin_access_key "$access_key"
put grafana_admin_password "$(random_hex 16)"
if [[ ! -e "$dir/secrets/api_key" ]]; then
    put api_key "otp_$(random_hex 24)"
    echo "compose-secrets: verifier API key (send as Authorization: Bearer ...): $(cat "$dir/secrets/api_key")" >&2
fi
api_hash=$(tr -d '\n' < "$dir/secrets/api_key" | sha256sum | cut -d' ' -f1)

if [[ -e "$dir/.env" ]]; then
    echo "compose-secrets: keeping .env" >&2
else
    {
        echo "OTP_CALLER_ID=$caller_id"
        echo "OTP_API_KEY_HASHES=$api_hash"
        if [[ $demo == 1 ]]; then
            echo "OTP_VOIPBIN_BASE_URL=http://voipbin-sim:8090/v1.0"
            echo "OTP_CALLBACK_URL=http://verifier:8081/v1/webhooks/voipbin"
        else
            echo "# OTP_CALLBACK_URL=https://otp.example.com/v1/webhooks/voipbin"
        fi
    } > "$dir/.env"
    chmod 600 "$dir/.env"
    echo "compose-secrets: wrote .env" >&2
fi

# Compose (without swarm) mounts secret files as they are on the host: give each to the user of
# the container that reads it, or a mode-600 file is unreadable there. The programs run as uid
# 10001 (Dockerfile), Grafana as 472; PostgreSQL's entrypoint reads its file as root.
if [[ $(id -u) -eq 0 ]]; then
    for f in database_url hash_key webhook_secret voipbin_access_key; do
        chown 10001:10001 "$dir/secrets/$f"
    done
    chown 472:0 "$dir/secrets/grafana_admin_password"
else
    echo "compose-secrets: not root: as root, chown 10001 secrets/{database_url,hash_key," \
        "webhook_secret,voipbin_access_key} and chown 472 secrets/grafana_admin_password" >&2
fi
