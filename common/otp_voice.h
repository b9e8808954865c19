/* SPDX-License-Identifier: Apache-2.0 */
/* What the call says: per-locale templates from data files (common/locales/
 * <locale>.json), the locale chain, SSML rendering and the VoIPBin actions. */
#ifndef OTP_VOICE_H
#define OTP_VOICE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct otp_voice_catalog otp_voice_catalog_t;

/* Loads every <locale>.json in dir. NULL with errstr if the folder or any file
 * is bad (a template missing a line, bad JSON). Free with otp_voice_destroy. */
otp_voice_catalog_t *otp_voice_load(const char *dir, char *errstr, size_t errstr_size);
void otp_voice_destroy(otp_voice_catalog_t *cat);

/* The folder holding the templates when none is configured: common/locales
 * beside the program's tree (bin/../common/locales), else ./common/locales. */
void otp_voice_default_dir(char *out, size_t out_size);

/* templates: a service's own words (policy "templates"), or NULL. Each
 * function below that takes it says, for a locale the service names, the
 * service's lines in place of the catalog's; every other line, and every
 * other locale, as the catalog says it:
 *   {"<locale>": {"intro"|"again"|"outro"|"gate"|"replay"|"sms"|"keypad"|
 *                 "keypad_thanks": "text with {brand}"}}
 * The pacing, grouping and digit words stay the catalog's. 0 when templates
 * is such an object (1-511 bytes a line, no control characters, {brand} the
 * only placeholder but for sms, which must say {code} exactly once); else -1
 * with errstr ("templates.en-US.sms: ..."). */
int otp_voice_templates_check(const json_t *templates, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Locale chain: the requested locale exactly → the same language in another
 * region (the file marked primary first) → the language of the phone's country
 * → the operator default → en-US. Returns a locale of the catalog (static
 * storage owned by cat). */
const char *otp_voice_pick(const otp_voice_catalog_t *cat, const char *requested,
                           const char *phone_country, const char *operator_default);

/* The TTS language of a template (what VoIPBin's talk gets as `language`). */
const char *otp_voice_language(const otp_voice_catalog_t *cat, const char *locale);

/* Escapes & < > " ' for XML text. Returns 0, or -1 if out is too small. */
int otp_xml_escape(const char *in, char *out, size_t out_size);

/* The pauses written into the call (ms). The budget of a call is one of
 * structure, not of speed: natural speaking rate, these pauses as written. */
#define OTP_VOICE_LEAD_MS 300        /* silence before the first word */
#define OTP_VOICE_INNER_MS 120       /* between digits inside a group */
#define OTP_VOICE_GROUP_MS 350       /* between groups */
#define OTP_VOICE_BEFORE_CODE_MS 200 /* after "your code is" */
#define OTP_VOICE_AFTER_CODE_MS 300  /* after the code */
/* From this many digits the second reading has no line of its own ("Again:"):
 * the code twice, 16 worst-case digits with their pauses, leaves no room for
 * it within 15 s. A pause well above the group pause sets the readings apart. */
#define OTP_VOICE_BARE_REPEAT_FROM 7
#define OTP_VOICE_REPEAT_MS 600

/* How a code of len digits is grouped when read: fills groups (up to 4) and
 * returns their count; 0 if len is outside 4-10. */
int otp_voice_groups(size_t len, int *groups);

/* OTP_BRAND is spoken in every call: 0 if brand is valid UTF-8, 1 to
 * OTP_VOICE_BRAND_MAX characters (at most 4 bytes each), without control
 * characters and not blank; else -1 with the reason, naming the setting. */
#define OTP_VOICE_BRAND_MAX 32
int otp_voice_brand_check(const char *brand, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* The SSML read in the call: a short silence, the intro, the code in groups
 * (otp_voice_groups) with the pauses above, again (from
 * OTP_VOICE_BARE_REPEAT_FROM digits: OTP_VOICE_REPEAT_MS of silence instead),
 * the code, then "{brand} will never ask you for this code". Digits are <say-as
 * interpret-as="characters"> or the locale's own digit words (<sub alias>).
 * Every inserted value is escaped. Returns a malloc'd string, or NULL. */
char *otp_voice_render_code(const otp_voice_catalog_t *cat, const json_t *templates,
                            const char *locale, const char *brand, const char *code);

/* The speaking model behind the timing rule of "heard" (used where no
 * marker can come back, OTP_CALLBACK_URL unset): natural speech at about 16
 * characters a second, a digit (spelled or said by its word) as one word,
 * every <break> as written. */
#define OTP_VOICE_MS_PER_CHAR 60
#define OTP_VOICE_MS_PER_DIGIT 360

/* When, after the answer, the first reading of a code of code_length digits
 * starts and ends (ms, by the model above; with the gate, after the shortest
 * way through it). */
typedef struct otp_voice_heard {
    int64_t code_start_ms, code_end_ms;
} otp_voice_heard_t;

/* Fills out for the locale's message; -1 if the locale or length is bad. */
int otp_voice_heard_times(const otp_voice_catalog_t *cat, const json_t *templates,
                          const char *locale, const char *brand, int code_length, int gate,
                          otp_voice_heard_t *out) __attribute__((warn_unused_result));

/* Options that shape the call flow. */
typedef struct otp_voice_opts {
    int gate; /* ask for a key before reading the code */
    int amd;  /* answering-machine detection: machine → hang up */
    /* Where webhook_send reports back (the heard marker; the gate's no_input),
     * may be NULL: then no marker, and one talk reads the whole message. */
    const char *notify_uri;
    const char *request_id;
} otp_voice_opts_t;

/* After the message the call offers it once more: the template's "replay"
 * line, then OTP_VOICE_REPLAY_WAIT_MS for OTP_VOICE_REPLAY_KEY. */
#define OTP_VOICE_REPLAY_KEY "1"
#define OTP_VOICE_REPLAY_WAIT_MS 5000

/* The inline `actions` array of POST /v1.0/calls: [amd], [the gate], the
 * message (with a notify_uri: its first reading, the marker webhook_send
 * {"type":"otp_heard","data":{"request_id","id":"${voipbin.call.id}"}}, the
 * rest), the replay offer (variable_set, talk, digits_receive, branch), the
 * message again if the key came, hangup. New reference; NULL on error. */
json_t *otp_voice_actions(const otp_voice_catalog_t *cat, const json_t *templates,
                          const char *locale, const char *brand, const char *code,
                          const otp_voice_opts_t *opts);

/* The SMS text (fallback or channel "sms"): plain text, {brand} and {code}
 * filled in. malloc'd, NULL on error. */
char *otp_voice_render_sms(const otp_voice_catalog_t *cat, const json_t *templates,
                           const char *locale, const char *brand, const char *code);

/* Keypad mode: ask the callee to key in the code the app shows and press #,
 * then send the digits with a signed webhook_send (type otp_keypad) to
 * notify_uri. NULL without a notify_uri. New reference. */
json_t *otp_voice_keypad_actions(const otp_voice_catalog_t *cat, const json_t *templates,
                                 const char *locale, const char *brand, int code_length,
                                 const char *notify_uri, const char *request_id);

#endif
