/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: otp_call_event_parse on arbitrary bytes (VoIPBin call
 * events and our gate's otp_no_input), and
 * otp_webhook_signature_ok with the input as body and as header. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "otp_crypto.h"
#include "otp_webhook.h"

#define SECRET "fuzz-webhook-secret"

static void check_event(const uint8_t *data, size_t size)
{
    otp_call_event_t ev;
    char err[256] = "";
    int rc = otp_call_event_parse((const char *)data, size, &ev, err, sizeof(err));

    if (rc < -1 || rc > 1)
        abort();
    if (rc == -1 && !err[0])
        abort();
    if (rc == 1 && (strncmp(ev.type, "call_", 5) == 0 || strcmp(ev.type, "otp_no_input") == 0))
        abort();
    if (rc != 0)
        return;
    if (strncmp(ev.type, "otp_", 4) == 0) {
        /* our own flows' webhook_send events (otp_no_input, ...) */
        if (!otp_uuid_valid(ev.call_id) || !otp_uuid_valid(ev.request_id) || !ev.status[0] ||
            (ev.no_input && strcmp(ev.type, "otp_no_input") != 0))
            abort();
        return;
    }
    if (strncmp(ev.type, "call_", 5) != 0 || !otp_uuid_valid(ev.call_id) ||
        otp_call_status_rank(ev.status) < 0 || strlen(ev.hangup_by) >= sizeof(ev.hangup_by) ||
        strlen(ev.hangup_reason) >= sizeof(ev.hangup_reason) ||
        (ev.progressed != 0 && ev.progressed != 1) || ev.no_input || ev.request_id[0])
        abort();
}

static void check_signature(const uint8_t *data, size_t size)
{
    char hex[65], header[80], fuzzed[96];
    size_t hlen;

    /* the right signature of the body verifies; any other does not */
    otp_hmac_sha256_hex(SECRET, data, size, hex);
    snprintf(header, sizeof(header), "sha256=%s", hex);
    if (otp_webhook_signature_ok(SECRET, (const char *)data, size, header) != 1)
        abort();
    header[7] = header[7] == '0' ? '1' : '0';
    if (otp_webhook_signature_ok(SECRET, (const char *)data, size, header) != 0)
        abort();

    /* the input's first bytes as the header, the rest as the body */
    hlen = size < sizeof(fuzzed) - 1 ? size : sizeof(fuzzed) - 1;
    memcpy(fuzzed, data, hlen);
    fuzzed[hlen] = '\0';
    otp_hmac_sha256_hex(SECRET, data + hlen, size - hlen, hex);
    if (otp_webhook_signature_ok(SECRET, (const char *)data + hlen, size - hlen, fuzzed) == 1 &&
        (strncmp(fuzzed, "sha256=", 7) != 0 || strlen(fuzzed) != 71 ||
         strncasecmp(fuzzed + 7, hex, 64) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_event(data, size);
    check_signature(data, size);
    return 0;
}
