/* SPDX-License-Identifier: Apache-2.0 */
/* event-check: runs the worker's otp.requested parser (otp_request_parse) on
 * messages and prints one line per message: "accept" or "reject <reason>".
 * The contract tests compare its verdicts with the JSON Schema's.
 *   event-check FILE...   one message per file (the whole file)
 *   event-check           NDJSON on stdin, one message per line */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_event.h"

static void check(const char *buf, size_t len)
{
    otp_request_t req;
    char reason[48], err[256];

    if (otp_request_parse(buf, len, &req, reason, sizeof(reason), err, sizeof(err)) == 0)
        printf("accept\n");
    else
        printf("reject %s\n", reason);
}

static int check_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    int rc = -1;

    if (!f) {
        fprintf(stderr, "event-check: cannot open %s\n", path);
        return -1;
    }
    for (;;) {
        if (cap - len < 4096) {
            char *nb = realloc(buf, cap + 65536);
            if (!nb)
                goto out;
            buf = nb;
            cap += 65536;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    check(buf ? buf : "", len);
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;

    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            rc |= check_file(argv[i]) != 0;
        return rc ? 1 : 0;
    }
    while ((len = getline(&line, &cap, stdin)) != -1) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        check(line, (size_t)len);
    }
    free(line);
    return 0;
}
