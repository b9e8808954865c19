/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_kafka.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "otp_config.h"
#include "otp_log.h"

extern char **environ;

int otp_kafka_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                  size_t errstr_size)
{
    char err[256];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "%s: %s", name, err);
        return -1;
    }
    return 0;
}

void otp_kafka_log(const rd_kafka_t *rk, int level, const char *facility, const char *message)
{
    otp_log_level_t l = level <= 3   ? OTP_LOG_ERROR
                        : level == 4 ? OTP_LOG_WARN
                        : level <= 6 ? OTP_LOG_INFO
                                     : OTP_LOG_DEBUG;
    char msg[1024];
    size_t n = 0;

    /* Quoted for logfmt: a '"' inside the message becomes '\''. */
    for (const char *p = message; *p && n < sizeof(msg) - 1; p++)
        msg[n++] = *p == '"' ? '\'' : *p;
    msg[n] = '\0';
    otp_log(l, "kafka_log", "client=%s facility=%s message=\"%s\"", rk ? rd_kafka_name(rk) : "-",
            facility, msg);
}

rd_kafka_conf_t *otp_kafka_conf_new(char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    rd_kafka_conf_set_log_cb(conf, otp_kafka_log);

    if (otp_kafka_set(conf, "bootstrap.servers", "localhost:9092", errstr, errstr_size))
        goto fail;
    for (char **e = environ; *e; e++) {
        char prop[256];
        const char *eq = strchr(*e, '=');
        size_t n;

        if (strncmp(*e, "KAFKA_", 6) != 0 || !eq)
            continue;
        n = (size_t)(eq - (*e + 6));
        if (n == 0 || n >= sizeof(prop))
            continue;
        for (size_t i = 0; i < n; i++) {
            char ch = (*e)[6 + i];
            prop[i] = ch == '_' ? '.' : (char)tolower((unsigned char)ch);
        }
        prop[n] = '\0';
        if (otp_kafka_set(conf, prop, eq + 1, errstr, errstr_size)) {
            char again[512];
            snprintf(again, sizeof(again), "KAFKA_%.*s (%s)", (int)n, *e + 6, errstr);
            snprintf(errstr, errstr_size, "%s", again);
            goto fail;
        }
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

int otp_kafka_probe(void *arg, char *err, size_t errsz)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(arg, 0, NULL, &md, 2000);

    if (md)
        rd_kafka_metadata_destroy(md);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errsz, "KAFKA_BOOTSTRAP_SERVERS=%s: %s",
                 otp_config_str("KAFKA_BOOTSTRAP_SERVERS"), rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}
