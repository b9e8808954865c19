/* SPDX-License-Identifier: Apache-2.0 */
/* Settings: one table (otp_config.c) gives the name, type, default, bounds and
 * meaning of every OTP_* environment variable. --help, validation and the
 * README table all come from it. Secrets may also come from NAME_FILE.
 * librdkafka properties pass through as KAFKA_* (see otp_kafka.h). */
#ifndef OTP_CONFIG_H
#define OTP_CONFIG_H

#include <stddef.h>

/* Which programs read a setting (bit mask). */
#define OTP_PROG_WORKER 0x1
#define OTP_PROG_VERIFIER 0x2
#define OTP_PROG_PRODUCER 0x4
#define OTP_PROG_MIGRATE 0x8
#define OTP_PROG_ADMIN 0x10
/* otp-admin purge alone: it needs the hash key, the other subcommands do not. */
#define OTP_PROG_ADMIN_PURGE 0x20
#define OTP_PROG_HOOKS 0x40

typedef enum {
    OTP_CFG_STR,
    OTP_CFG_INT,
    OTP_CFG_BOOL,
    OTP_CFG_SECRET, /* never printed; NAME_FILE accepted; sample values refused outside demo mode */
} otp_cfg_type_t;

typedef struct otp_setting {
    const char *name;
    otp_cfg_type_t type;
    const char *def; /* NULL = required (for the programs in `programs`) */
    long min, max;   /* for OTP_CFG_INT */
    unsigned programs;
    const char *help;
} otp_setting_t;

/* Reads and checks every setting of `program` from the environment.
 * Returns 0, or -1 with a message naming the setting in errstr.
 * Not thread-safe: call from main before threads start. */
int otp_config_load(unsigned program, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* The value of a setting after otp_config_load (default applied). The string
 * is owned by the config and lives until exit. NULL only for unknown names. */
const char *otp_config_str(const char *name);
long otp_config_int(const char *name);
int otp_config_bool(const char *name);

/* A setting's default from the table (before otp_config_load); NULL when it
 * has none or the name is unknown. */
const char *otp_config_default(const char *name);

/* Prints the settings of `program` as a help table (secrets shown as names only). */
void otp_config_print_help(unsigned program, const char *usage);

/* The flags every program answers alike: --help (-h) prints usage and the
 * settings table, --version the version. 1 when argv was one of them and
 * the answer is printed (exit 0), 0 otherwise. */
int otp_config_common_flags(int argc, char **argv, unsigned program, const char *name,
                            const char *usage);
/* Prints every setting as a Markdown table, for the README. */
void otp_config_print_markdown(void);

/* Demo mode (OTP_DEMO_MODE=1) lets sample secrets through. */
int otp_config_demo_mode(void);

#endif
