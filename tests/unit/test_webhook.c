/* SPDX-License-Identifier: Apache-2.0 */
/* otp_webhook: parsing VoIPBin call webhooks and the order of call statuses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_webhook.h"
#include "unit.h"

#define CALL_ID "6a1d7d3e-2b9c-4c53-8b4e-0f3b7d2a9e11"

/* Parses a heap copy of exactly len bytes (ASan sees any read past it). */
static int parse(const char *body, size_t len, otp_call_event_t *ev, char *err, size_t esz)
{
    char *copy = malloc(len ? len : 1);
    int rc;

    if (len)
        memcpy(copy, body, len);
    rc = otp_call_event_parse(copy, len, ev, err, esz);
    free(copy);
    return rc;
}

static void test_good(void)
{
    otp_call_event_t ev;
    char err[256] = "";
    const char *hangup =
        "{\"type\":\"call_hangup\",\"data\":{\"id\":\"" CALL_ID "\",\"customer_id\":\"x\","
        "\"status\":\"hangup\",\"direction\":\"outgoing\",\"hangup_by\":\"remote\","
        "\"hangup_reason\":\"normal\",\"tm_progressing\":\"2026-01-15 09:30:05.123456\","
        "\"tm_hangup\":\"2026-01-15 09:30:41.000000\",\"source\":{\"type\":\"tel\"}}}";

    if (CHECK_EQ_INT(parse(hangup, strlen(hangup), &ev, err, sizeof(err)), 0)) {
        CHECK_EQ_STR(ev.type, "call_hangup");
        CHECK_EQ_STR(ev.call_id, CALL_ID);
        CHECK_EQ_STR(ev.status, "hangup");
        CHECK_EQ_STR(ev.hangup_by, "remote");
        CHECK_EQ_STR(ev.hangup_reason, "normal");
        CHECK_EQ_INT(ev.progressed, 1);
    } else {
        printf("    %s\n", err);
    }

    /* not answered: the legacy sentinel, null, absent */
    {
        static const char *const unanswered[] = {
            "{\"type\":\"call_hangup\",\"data\":{\"id\":\"" CALL_ID "\",\"status\":\"hangup\","
            "\"hangup_by\":\"remote\",\"hangup_reason\":\"noanswer\","
            "\"tm_progressing\":\"9999-01-01 00:00:00.000000\"}}",
            "{\"type\":\"call_hangup\",\"data\":{\"id\":\"" CALL_ID "\",\"status\":\"hangup\","
            "\"hangup_reason\":\"busy\",\"tm_progressing\":null}}",
            "{\"type\":\"call_ringing\",\"data\":{\"id\":\"" CALL_ID "\",\"status\":\"ringing\","
            "\"hangup_by\":null,\"hangup_reason\":\"\"}}",
        };
        for (size_t i = 0; i < sizeof(unanswered) / sizeof(*unanswered); i++) {
            unit_ctx("unanswered %zu", i);
            if (CHECK_EQ_INT(parse(unanswered[i], strlen(unanswered[i]), &ev, err, sizeof(err)), 0))
                CHECK_EQ_INT(ev.progressed, 0);
        }
        unit_ctx(NULL);
        CHECK_EQ_STR(ev.type, "call_ringing");
        CHECK_EQ_STR(ev.status, "ringing");
        CHECK_EQ_STR(ev.hangup_by, "");
        CHECK_EQ_STR(ev.hangup_reason, "");
    }

    /* every status, upper-case call id */
    {
        static const char *const statuses[] = {"dialing",     "ringing",   "progressing",
                                               "terminating", "canceling", "hangup"};
        for (size_t i = 0; i < sizeof(statuses) / sizeof(*statuses); i++) {
            char body[256];
            snprintf(body, sizeof(body),
                     "{\"type\":\"call_updated\",\"data\":{\"id\":\"6A1D7D3E-2B9C-4C53-8B4E-"
                     "0F3B7D2A9E11\","
                     "\"status\":\"%s\"}}",
                     statuses[i]);
            unit_ctx("status %s", statuses[i]);
            if (CHECK_EQ_INT(parse(body, strlen(body), &ev, err, sizeof(err)), 0))
                CHECK_EQ_STR(ev.status, statuses[i]);
        }
        unit_ctx(NULL);
    }

    /* events that are not about a call */
    {
        static const char *const other[] = {
            "{\"type\":\"message_created\",\"data\":{\"id\":\"x\"}}",
            "{\"type\":\"activeflow_updated\",\"data\":{}}",
            "{\"type\":\"call\",\"data\":{}}",
            "{\"type\":\"\",\"data\":{}}",
        };
        for (size_t i = 0; i < sizeof(other) / sizeof(*other); i++) {
            unit_ctx("not a call event %zu", i);
            CHECK_EQ_INT(parse(other[i], strlen(other[i]), &ev, err, sizeof(err)), 1);
        }
        unit_ctx(NULL);
    }
}

#define REQ_ID "0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d01"

/* The gate's own webhook_send when no key was pressed. */
static void test_no_input(void)
{
    otp_call_event_t ev;
    char err[256] = "";
    const char *good = "{\"type\":\"otp_no_input\",\"data\":{\"request_id\":\"" REQ_ID "\","
                       "\"id\":\"" CALL_ID "\"}}";
    static const char *const bad[] = {
        "{\"type\":\"otp_no_input\",\"data\":{\"id\":\"" CALL_ID "\"}}",
        "{\"type\":\"otp_no_input\",\"data\":{\"request_id\":\"" REQ_ID "\"}}",
        "{\"type\":\"otp_no_input\",\"data\":{\"request_id\":\"x\",\"id\":\"" CALL_ID "\"}}",
        "{\"type\":\"otp_no_input\",\"data\":{\"request_id\":\"" REQ_ID
        "\",\"id\":\"${voipbin.call.id}\"}}",
        "{\"type\":\"otp_no_input\",\"data\":{\"request_id\":1,\"id\":\"" CALL_ID "\"}}",
        "{\"type\":\"otp_no_input\"}",
    };

    if (CHECK_EQ_INT(parse(good, strlen(good), &ev, err, sizeof(err)), 0)) {
        CHECK_EQ_INT(ev.no_input, 1);
        CHECK_EQ_STR(ev.request_id, REQ_ID);
        CHECK_EQ_STR(ev.call_id, CALL_ID);
        CHECK_EQ_STR(ev.status, "no_input");
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        unit_ctx("bad otp_no_input %zu", i);
        err[0] = '\0';
        CHECK_EQ_INT(parse(bad[i], strlen(bad[i]), &ev, err, sizeof(err)), -1);
        CHECK(err[0] != '\0');
    }
    unit_ctx(NULL);
    /* a VoIPBin call event is never taken for it */
    {
        const char *call = "{\"type\":\"call_hangup\",\"data\":{\"id\":\"" CALL_ID "\","
                           "\"status\":\"hangup\",\"request_id\":\"" REQ_ID "\"}}";
        if (CHECK_EQ_INT(parse(call, strlen(call), &ev, err, sizeof(err)), 0)) {
            CHECK_EQ_INT(ev.no_input, 0);
            CHECK_EQ_STR(ev.request_id, "");
        }
    }
}

/* The heard marker (otp_heard) needs both UUIDs, the call's own id
 * substituted; a call event's tm_progressing and tm_hangup become ms (legacy
 * format, sentinel and absence included) for the timing rule. */
static void test_heard_and_times(void)
{
    otp_call_event_t ev;
    char err[256] = "";
    const char *good = "{\"type\":\"otp_heard\",\"data\":{\"request_id\":\"" REQ_ID "\","
                       "\"id\":\"" CALL_ID "\"}}";
    static const char *const bad[] = {
        "{\"type\":\"otp_heard\",\"data\":{\"request_id\":\"" REQ_ID "\"}}",
        "{\"type\":\"otp_heard\",\"data\":{\"request_id\":\"" REQ_ID
        "\",\"id\":\"${voipbin.call.id}\"}}",
        "{\"type\":\"otp_heard\",\"data\":{\"id\":\"" CALL_ID "\"}}",
    };
    const char *timed = "{\"type\":\"call_hangup\",\"data\":{\"id\":\"" CALL_ID "\","
                        "\"status\":\"hangup\",\"tm_progressing\":\"2026-01-15T09:30:00.5Z\","
                        "\"tm_hangup\":\"2026-01-15 09:30:07.250000\"}}";
    const char *unset = "{\"type\":\"call_hangup\",\"data\":{\"id\":\"" CALL_ID "\","
                        "\"status\":\"hangup\",\"tm_progressing\":\"9999-01-01 00:00:00.000000\"}}";

    if (CHECK_EQ_INT(parse(good, strlen(good), &ev, err, sizeof(err)), 0)) {
        CHECK_EQ_INT(ev.heard, 1);
        CHECK_EQ_INT(ev.no_input, 0);
        CHECK_EQ_STR(ev.request_id, REQ_ID);
        CHECK_EQ_STR(ev.call_id, CALL_ID);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        unit_ctx("bad otp_heard %zu", i);
        CHECK_EQ_INT(parse(bad[i], strlen(bad[i]), &ev, err, sizeof(err)), -1);
    }
    unit_ctx(NULL);
    if (CHECK_EQ_INT(parse(timed, strlen(timed), &ev, err, sizeof(err)), 0)) {
        CHECK_EQ_INT(ev.progressed, 1);
        CHECK_EQ_INT(ev.hangup_ms - ev.progressing_ms, 6750);
    }
    if (CHECK_EQ_INT(parse(unset, strlen(unset), &ev, err, sizeof(err)), 0)) {
        CHECK_EQ_INT(ev.progressed, 0);
        CHECK_EQ_INT(ev.progressing_ms, 0);
        CHECK_EQ_INT(ev.hangup_ms, 0);
    }
    CHECK_EQ_STR(otp_heard_rule_name(OTP_HEARD_MARKER), "marker");
    CHECK_EQ_STR(otp_heard_rule_name(OTP_HEARD_TIMING), "timing");
    CHECK_EQ_STR(otp_heard_rule_name(OTP_HEARD_ANSWER), "answer");
}

static void test_bad(void)
{
    static const char *const bad[] = {
        "not json",
        "[]",
        "{}",
        "{\"type\":1,\"data\":{}}",
        "{\"type\":null,\"data\":{}}",
        "{\"type\":\"call_hangup\"}",
        "{\"type\":\"call_hangup\",\"data\":[]}",
        "{\"type\":\"call_hangup\",\"data\":\"x\"}",
        "{\"type\":\"message_created\"}",
        "{\"type\":\"call_hangup\",\"data\":{\"status\":\"hangup\"}}",
        "{\"type\":\"call_hangup\",\"data\":{\"id\":\"not-a-uuid\",\"status\":\"hangup\"}}",
        "{\"type\":\"call_hangup\",\"data\":{\"id\":42,\"status\":\"hangup\"}}",
        "{\"type\":\"call_hangup\",\"data\":{\"id\":\"" CALL_ID "\"}}",
        "{\"type\":\"call_hangup\",\"data\":{\"id\":\"" CALL_ID "\",\"status\":\"answered\"}}",
        "{\"type\":\"call_hangup\",\"data\":{\"id\":\"" CALL_ID "\",\"status\":\"HANGUP\"}}",
        "{\"type\":\"call_hangup\",\"data\":{\"id\":\"" CALL_ID "\",\"status\":4}}",
        "{\"type\":\"call_hangup\",\"data\":{\"id\":\"" CALL_ID "\",\"status\":\"hangup\","
        "\"hangup_reason\":\"a-reason-too-long-to-keep\"}}",
        "{\"type\":\"call_hangup\",\"data\":{\"id\":\"" CALL_ID "\",\"status\":\"hangup\","
        "\"hangup_by\":1}}",
        "{\"type\":\"call_hangup_with_a_type_name_longer_than_forty_eight\",\"data\":{}}",
        "{\"type\":\"call_hangup\",\"data\":{\"id\":\"" CALL_ID "\",\"status\":\"hangup\"}",
        "{\"type\":\"call_hangup\",\"data\":{\"id\":\"" CALL_ID "\\u0000\",\"status\":\"hangup\"}}",
    };
    otp_call_event_t ev;
    char err[256];

    CHECK(sizeof(bad) / sizeof(*bad) >= 6);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        unit_ctx("bad webhook %zu: %.60s", i, bad[i]);
        err[0] = '\0';
        CHECK_EQ_INT(parse(bad[i], strlen(bad[i]), &ev, err, sizeof(err)), -1);
        CHECK(err[0] != '\0');
    }
    unit_ctx(NULL);

    /* empty, and larger than OTP_WEBHOOK_MAX_BYTES */
    err[0] = '\0';
    CHECK_EQ_INT(otp_call_event_parse("", 0, &ev, err, sizeof(err)), -1);
    CHECK(err[0] != '\0');
    {
        size_t len = OTP_WEBHOOK_MAX_BYTES + 1;
        char *big = malloc(len);
        const char *head =
            "{\"type\":\"call_hangup\",\"data\":{\"id\":\"" CALL_ID "\",\"status\":\"hangup\"}}";
        memset(big, ' ', len);
        memcpy(big, head, strlen(head));
        CHECK_EQ_INT(otp_call_event_parse(big, len, &ev, err, sizeof(err)), -1);
        /* the same body within the limit is fine */
        CHECK_EQ_INT(otp_call_event_parse(big, len - 1, &ev, err, sizeof(err)), 0);
        free(big);
    }
}

static void test_rank(void)
{
    CHECK_EQ_INT(otp_call_status_rank("dialing"), 0);
    CHECK_EQ_INT(otp_call_status_rank("ringing"), 1);
    CHECK_EQ_INT(otp_call_status_rank("progressing"), 2);
    CHECK_EQ_INT(otp_call_status_rank("terminating"), 3);
    CHECK_EQ_INT(otp_call_status_rank("canceling"), 3);
    CHECK_EQ_INT(otp_call_status_rank("hangup"), 4);
    CHECK(otp_call_status_rank("dialing") < otp_call_status_rank("ringing"));
    CHECK(otp_call_status_rank("ringing") < otp_call_status_rank("progressing"));
    CHECK(otp_call_status_rank("progressing") < otp_call_status_rank("terminating"));
    CHECK(otp_call_status_rank("progressing") < otp_call_status_rank("canceling"));
    CHECK(otp_call_status_rank("terminating") < otp_call_status_rank("hangup"));
    CHECK(otp_call_status_rank("canceling") < otp_call_status_rank("hangup"));
    CHECK_EQ_INT(otp_call_status_rank(""), -1);
    CHECK_EQ_INT(otp_call_status_rank("answered"), -1);
    CHECK_EQ_INT(otp_call_status_rank("Hangup"), -1);
    CHECK_EQ_INT(otp_call_status_rank("hangup "), -1);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_good();
    test_no_input();
    test_heard_and_times();
    test_bad();
    test_rank();
    return unit_finish(argv[0]);
}
