/* SPDX-License-Identifier: Apache-2.0 */
/* VoIPBin call webhooks ({"type":"call_*","data":Call}): parsing, and applying
 * them to calls and challenges so that duplicates and reordering never move a
 * call or a challenge backwards. */
#ifndef OTP_WEBHOOK_H
#define OTP_WEBHOOK_H

/* How long a call counted unheard (its hang-up came without the heard marker)
 * waits before the next call: the marker, sent by the call's flow without
 * waiting, may still be on its way, and it makes the request delivered. */
#define OTP_HEARD_GRACE_S "10"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#define OTP_WEBHOOK_MAX_BYTES 65536

/* The first key of the per-call advisory lock, pg_advisory_lock(OTP_CALL_LOCK,
 * hashtext(call_id)): the two-key form, a space apart from the single-key
 * locks of the relay and the purge. Whoever must see a webhook kept for a
 * call takes it (otp_webhook.c, worker/challenge.c). */
#define OTP_CALL_LOCK "727276"

typedef struct otp_call_event {
    char type[48]; /* call_created, call_ringing, ... (others are ignored) */
    char call_id[37];
    char status[16]; /* dialing ringing progressing terminating canceling hangup */
    char hangup_by[16];
    char hangup_reason[16];
    int progressed;      /* tm_progressing present: the callee answered */
    int no_input;        /* our own webhook_send: the gate heard no key */
    int keypad;          /* our own webhook_send: the digits keyed in (keypad mode) */
    int heard;           /* our own webhook_send: the first reading of the code ended */
    char request_id[37]; /* set with no_input, keypad and heard */
    /* tm_progressing and tm_hangup (ms since the epoch), 0 when absent */
    int64_t progressing_ms, hangup_ms;
    char digits[16]; /* keypad: the digits, '#' and other keys removed */
    /* A VoIPBin call's destination (data.destination.target, "" when absent)
     * and direction: what tells a call that is not ours. */
    char destination[40];
    int incoming;
} otp_call_event_t;

/* Parses a webhook body: a VoIPBin call event, or one our own call flows send
 * with webhook_send: {"type":"otp_no_input","data":{"request_id","id"}} (the
 * gate heard no key) or {"type":"otp_keypad","data":{"request_id","id",
 * "digits"}} (keypad mode) or {"type":"otp_heard","data":{"request_id","id"}}
 * (the call's first full reading of the code ended). 0 ok; 1 a well-formed event that is not about
 * a call (ignored by callers); -1 malformed, with errstr. Thread-safe. */
int otp_call_event_parse(const char *body, size_t len, otp_call_event_t *ev, char *errstr,
                         size_t errstr_size) __attribute__((warn_unused_result));

/* How long past the end of the first reading (by the speaking model of
 * otp_voice.h) a call must have lasted for the timing rule to count it heard:
 * the margin for a voice slower than the model and for the answer's own
 * delay. Stated in the events ("margin_ms"). */
#define OTP_HEARD_MARGIN_MS 1500

/* What makes an answered call "heard" (calls.heard_rule): the marker
 * webhook_send ("marker"), or where no marker can come back (no
 * OTP_CALLBACK_URL) the call's length ("timing"); keypad calls and calls
 * recorded before the rule existed: answered and ended normally ("answer"). */
typedef enum { OTP_HEARD_ANSWER, OTP_HEARD_MARKER, OTP_HEARD_TIMING } otp_heard_rule_t;
const char *otp_heard_rule_name(otp_heard_rule_t rule);

/* Order of call statuses; a webhook applies only if it moves a call forward. */
int otp_call_status_rank(const char *status);

/* Applies an event in its own transaction. A call id not recorded yet is kept
 * in webhook_pending and applied by otp_call_apply_pending once the worker
 * records the call, if it can be ours: an outgoing call to a number with an
 * attempt under way (a challenge in 'calling'); else it is not kept. Keeping
 * one drops the oldest kept events beyond the caps. 0 applied or ignored
 * (stale), 1 kept pending, 2 not kept (not ours), -1 db error. */
int otp_call_event_apply(PGconn *db, const otp_call_event_t *ev, const char *raw_body);

/* The caps of webhook_pending (rows, bytes of the bodies), from the
 * settings; both >= 1. Call from main before any event is applied. */
void otp_webhook_pending_caps(long long rows, long long bytes);
/* Kept events dropped by the caps so far (this process). Thread-safe. */
long long otp_webhook_pending_dropped(void);

/* Applies the kept events of call_id, oldest first. 0 ok, -1 db error. */
int otp_call_apply_pending(PGconn *db, const char *call_id);

#endif
