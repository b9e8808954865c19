#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The verifier with curl: ask for a call, long-poll its state until delivered, verify the code
# read from stdin.   OTP_URL=http://127.0.0.1:8080 OTP_API_KEY=... sh client.sh +14155552671 u-1
# Needs curl and python3 (to read JSON; jq does as well).
set -eu
URL=${OTP_URL:-http://127.0.0.1:8080}
AUTH="Authorization: Bearer $OTP_API_KEY"
field() { python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }

rid=$(curl -sS --noproxy '*' -H "$AUTH" -H 'Content-Type: application/json' \
  -d "{\"phone\":\"$1\",\"user_id\":\"$2\",\"purpose\":\"login\"}" "$URL/v1/requests" |
  field request_id)
[ -n "$rid" ] || { echo "not accepted" >&2; exit 1; }
echo "{\"request_id\":\"$rid\"}"
since=""
while :; do
  state=$(curl -sS --noproxy '*' -H "$AUTH" "$URL/v1/requests/$rid?wait=25$since")
  status=$(echo "$state" | field status)
  echo "{\"status\":\"$status\"}"
  since="&since=$(echo "$state" | field version)"
  case $status in
    delivered) break ;;
    failed|expired|rejected|rate_limited|blocked) exit 1 ;;
  esac
done
read -r code
curl -sS --noproxy '*' -H "$AUTH" -H 'Content-Type: application/json' \
  -d "{\"request_id\":\"$rid\",\"code\":\"$code\"}" "$URL/v1/verify"
echo
