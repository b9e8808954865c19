/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: otp_verify_request_parse on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "otp_crypto.h"
#include "otp_event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char rid[37], code[11], err[256] = "";
    size_t n;

    memset(rid, 'X', sizeof(rid));
    memset(code, 'X', sizeof(code));
    if (otp_verify_request_parse((const char *)data, size, rid, code, err, sizeof(err)) != 0) {
        if (!err[0])
            abort();
        return 0;
    }
    if (memchr(rid, '\0', sizeof(rid)) == NULL || memchr(code, '\0', sizeof(code)) == NULL)
        abort();
    n = strlen(code);
    if (!otp_uuid_valid(rid) || n < OTP_CODE_MIN || n > OTP_CODE_MAX ||
        strspn(code, "0123456789") != n)
        abort();
    for (const char *p = rid; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            abort();
    return 0;
}
