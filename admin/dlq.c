/* SPDX-License-Identifier: Apache-2.0 */
/* otp-admin dlq list|show|replay: the dead letters kept in PostgreSQL. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "otp_config.h"
#include "otp_db.h"
#include "otp_event.h"
#include "otp_kafka.h"

#define DLQ_MAX_EDIT (1024 * 1024)

/* Prints s with every run of 7 or more digits masked. */
static void print_redacted(FILE *out, const char *s, size_t len)
{
    size_t n = 0;
    char *red = otp_redact_numbers(s, len, &n);

    if (red)
        fwrite(red, 1, n, out);
    free(red);
}

static int parse_id(const char *s, long long *id)
{
    char *end;

    *id = strtoll(s, &end, 10);
    return *s && !*end && *id > 0 ? 0 : -1;
}

static PGconn *connect_db(void)
{
    char err[256];
    PGconn *db = otp_db_connect(otp_config_str("OTP_DATABASE_URL"), "otp-admin", err, sizeof(err));

    if (!db)
        fprintf(stderr, "otp-admin: %s\n", err);
    return db;
}

static int dlq_list(PGconn *db, int argc, char **argv)
{
    static const struct option opts[] = {{"limit", required_argument, NULL, 'l'}, {0, 0, 0, 0}};
    char limit[24] = "50";
    const char *p[1] = {limit};
    PGresult *r;
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        long long n;

        if (c != 'l' || parse_id(optarg, &n) != 0) {
            fprintf(stderr, "%s\n", admin_usage);
            return 2;
        }
        snprintf(limit, sizeof(limit), "%lld", n);
    }
    if (optind < argc) {
        fprintf(stderr, "otp-admin: dlq list takes no ID\n%s\n", admin_usage);
        return 2;
    }
    r = otp_db_query(db, "dlq_list",
                     "SELECT d.id, to_char(d.created_at AT TIME ZONE 'UTC',"
                     "         'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), d.reason, d.topic, d.kpartition,"
                     "       d.koffset, length(d.payload),"
                     "       (SELECT count(*) FROM dead_letter_replays x"
                     "         WHERE x.dead_letter_id = d.id), d.error"
                     "  FROM dead_letters d ORDER BY d.id DESC LIMIT $1::int",
                     1, p);
    if (!r)
        return 2;
    printf("%-8s %-20s %-24s %-24s %6s %s\n", "id", "created_at", "reason", "source", "bytes",
           "replays  error");
    for (int i = 0; i < PQntuples(r); i++) {
        char src[80];

        snprintf(src, sizeof(src), "%s[%s]@%s", PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
                 PQgetvalue(r, i, 5));
        printf("%-8s %-20s %-24s %-24s %6s %-8s ", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
               PQgetvalue(r, i, 2), src, PQgetvalue(r, i, 6), PQgetvalue(r, i, 7));
        print_redacted(stdout, PQgetvalue(r, i, 8), (size_t)PQgetlength(r, i, 8));
        putchar('\n');
    }
    PQclear(r);
    return 0;
}

/* The stored bytes of dead letter id (caller frees), NULL when there is none. */
static unsigned char *stored_payload(PGconn *db, const char *id, size_t *len, PGresult **row)
{
    const char *p[1] = {id};
    PGresult *r = otp_db_query(db, "dlq_show",
                               "SELECT payload, reason, error, topic, kpartition, koffset,"
                               "  to_char(created_at AT TIME ZONE 'UTC',"
                               "          'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
                               "  FROM dead_letters WHERE id = $1::bigint",
                               1, p);
    unsigned char *out;

    *row = NULL;
    if (!r || PQntuples(r) != 1) {
        PQclear(r);
        return NULL;
    }
    out = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 0), len);
    *row = r;
    return out;
}

static int dlq_show(PGconn *db, int argc, char **argv)
{
    static const struct option opts[] = {{"raw", no_argument, NULL, 'r'}, {0, 0, 0, 0}};
    int c, raw = 0, rc = 2;
    long long id;
    size_t len = 0;
    unsigned char *payload = NULL;
    PGresult *row = NULL, *rep = NULL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'r') {
            fprintf(stderr, "%s\n", admin_usage);
            return 2;
        }
        raw = 1;
    }
    if (optind + 1 != argc || parse_id(argv[optind], &id) != 0) {
        fprintf(stderr, "otp-admin: dlq show needs one dead letter ID\n%s\n", admin_usage);
        return 2;
    }
    payload = stored_payload(db, argv[optind], &len, &row);
    if (!payload) {
        fprintf(stderr, "otp-admin: no dead letter %lld\n", id);
        rc = 1;
        goto out;
    }
    if (raw) {
        /* The exact bytes, for an operator to fix: they may hold a number. */
        fwrite(payload, 1, len, stdout);
        rc = 0;
        goto out;
    }
    printf("id: %lld\ncreated_at: %s\nreason: %s\nsource: %s[%s]@%s\nerror: ", id,
           PQgetvalue(row, 0, 6), PQgetvalue(row, 0, 1), PQgetvalue(row, 0, 3),
           PQgetvalue(row, 0, 4), PQgetvalue(row, 0, 5));
    print_redacted(stdout, PQgetvalue(row, 0, 2), (size_t)PQgetlength(row, 0, 2));
    printf("\npayload (%zu bytes, numbers masked; --raw for the exact bytes): ", len);
    print_redacted(stdout, (const char *)payload, len);
    putchar('\n');
    {
        const char *p[1] = {argv[optind]};
        rep =
            otp_db_query(db, "dlq_replays",
                         "SELECT id, to_char(replayed_at AT TIME ZONE 'UTC',"
                         "  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), edited, topic, kpartition, koffset,"
                         "  replayed_by FROM dead_letter_replays WHERE dead_letter_id = $1::bigint"
                         " ORDER BY id",
                         1, p);
    }
    if (!rep)
        goto out;
    for (int i = 0; i < PQntuples(rep); i++)
        printf("replay: %s at %s edited=%s to %s[%s]@%s by %s\n", PQgetvalue(rep, i, 0),
               PQgetvalue(rep, i, 1), PQgetvalue(rep, i, 2)[0] == 't' ? "yes" : "no",
               PQgetvalue(rep, i, 3), PQgetvalue(rep, i, 4), PQgetvalue(rep, i, 5),
               PQgetvalue(rep, i, 6));
    rc = 0;
out:
    PQfreemem(payload);
    PQclear(row);
    PQclear(rep);
    return rc;
}

/* Reads at most DLQ_MAX_EDIT bytes of path; caller frees. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;

    if (!f)
        return NULL;
    buf = malloc(DLQ_MAX_EDIT + 1);
    if (buf) {
        *len = fread(buf, 1, DLQ_MAX_EDIT + 1, f);
        if (ferror(f) || *len > DLQ_MAX_EDIT) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

static int publish(const char *topic, const char *value, size_t len, const char *id, admin_dr_t *d,
                   char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = otp_kafka_conf_new(errstr, errstr_size);
    rd_kafka_t *rk = NULL;
    json_t *root = json_loadb(value, len, 0, NULL);
    const char *key = json_string_value(json_object_get(root, "phone"));
    rd_kafka_resp_err_t err;
    int rc = -1;

    if (!conf || otp_kafka_set(conf, "enable.idempotence", "true", errstr, errstr_size))
        goto out;
    rd_kafka_conf_set_dr_msg_cb(conf, admin_on_delivery);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!rk)
        goto out;
    conf = NULL; /* owned by rk */
    err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE((void *)value, len),
                            RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                            RD_KAFKA_V_HEADER("otp.replay_of_dead_letter", id, -1),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(d),
                            RD_KAFKA_V_END);
    if (err) {
        snprintf(errstr, errstr_size, "produce: %s", rd_kafka_err2str(err));
        goto out;
    }
    rd_kafka_flush(rk, 30000);
    if (!d->done || d->err) {
        snprintf(errstr, errstr_size, "not delivered: %s",
                 d->done ? rd_kafka_err2str(d->err) : "timed out");
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (rk)
        rd_kafka_destroy(rk);
    return rc;
}

static int dlq_replay(PGconn *db, int argc, char **argv)
{
    static const struct option opts[] = {{"edit", required_argument, NULL, 'e'}, {0, 0, 0, 0}};
    const char *edit = NULL, *topic = otp_config_str("OTP_TOPIC_REQUESTS");
    unsigned char *stored = NULL;
    char *fixed = NULL, err[512], part[16], off[24];
    size_t len = 0, stored_len = 0;
    PGresult *row = NULL, *ins = NULL;
    admin_dr_t d = {0};
    long long id;
    int c, rc = 2;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'e') {
            fprintf(stderr, "%s\n", admin_usage);
            return 2;
        }
        edit = optarg;
    }
    if (optind + 1 != argc || parse_id(argv[optind], &id) != 0) {
        fprintf(stderr, "otp-admin: dlq replay needs one dead letter ID\n%s\n", admin_usage);
        return 2;
    }
    stored = stored_payload(db, argv[optind], &stored_len, &row);
    if (!stored) {
        fprintf(stderr, "otp-admin: no dead letter %lld\n", id);
        rc = 1;
        goto out;
    }
    if (edit) {
        fixed = read_file(edit, &len);
        if (!fixed) {
            fprintf(stderr, "otp-admin: cannot read %s (at most %d bytes)\n", edit, DLQ_MAX_EDIT);
            goto out;
        }
        /* A trailing newline from an editor is not part of the message. */
        while (len > 0 && (fixed[len - 1] == '\n' || fixed[len - 1] == '\r'))
            len--;
    }
    if (publish(topic, edit ? fixed : (const char *)stored, edit ? len : stored_len, argv[optind],
                &d, err, sizeof(err)) != 0) {
        fprintf(stderr, "otp-admin: dead letter %lld not replayed: %s\n", id, err);
        goto out;
    }
    snprintf(part, sizeof(part), "%d", (int)d.partition);
    snprintf(off, sizeof(off), "%lld", (long long)d.offset);
    {
        /* The bytes go as binary: they are recorded exactly as sent. */
        const char *p[6] = {
            argv[optind], edit ? "true" : "false", edit ? fixed : (const char *)stored, topic, part,
            off};
        int lens[6] = {0, 0, (int)(edit ? len : stored_len), 0, 0, 0};
        int fmts[6] = {0, 0, 1, 0, 0, 0};

        ins = PQexecParams(db,
                           "INSERT INTO dead_letter_replays (dead_letter_id, edited, payload,"
                           " topic, kpartition, koffset)"
                           " VALUES ($1::bigint, $2::boolean, $3::bytea, $4, $5::int, $6::bigint)",
                           6, NULL, p, lens, fmts, 0);
    }
    if (PQresultStatus(ins) != PGRES_COMMAND_OK) {
        fprintf(stderr, "otp-admin: replayed to %s[%s]@%s but not recorded: %s", topic, part, off,
                PQerrorMessage(db));
        goto out;
    }
    printf("replayed dead_letter_id=%lld to %s[%s]@%s edited=%s bytes=%zu\n", id, topic, part, off,
           edit ? "yes" : "no", edit ? len : stored_len);
    rc = 0;
out:
    PQfreemem(stored);
    free(fixed);
    PQclear(row);
    PQclear(ins);
    return rc;
}

int admin_dlq(int argc, char **argv)
{
    PGconn *db;
    int rc;

    if (argc < 2 ||
        (strcmp(argv[1], "list") && strcmp(argv[1], "show") && strcmp(argv[1], "replay"))) {
        fprintf(stderr, "otp-admin: dlq list|show|replay\n%s\n", admin_usage);
        return 2;
    }
    db = connect_db();
    if (!db)
        return 2;
    if (strcmp(argv[1], "list") == 0)
        rc = dlq_list(db, argc - 1, argv + 1);
    else if (strcmp(argv[1], "show") == 0)
        rc = dlq_show(db, argc - 1, argv + 1);
    else
        rc = dlq_replay(db, argc - 1, argv + 1);
    PQfinish(db);
    return rc;
}
