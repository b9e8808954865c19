/* SPDX-License-Identifier: Apache-2.0 */
/* sim_state: building and resetting the shared state to its startup values. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "sim_calls.h"
#include "sim_control.h"
#include "sim_extras.h"
#include "sim_messages.h"

int64_t sim_scaled_ns(const sim_t *s, int64_t ms)
{
    return (int64_t)((double)ms * 1e6 * s->cfg->time_scale);
}

static void set_str(char **dst, const char *v)
{
    char *n = sim_strdup(v);

    if (!n)
        return;
    free(*dst);
    *dst = n;
}

/* "us, GB ,all" → whitelist array (lowercase); "all" anywhere allows every country. */
static void load_whitelist(sim_t *s, const char *list)
{
    const char *p = list;

    json_decref(s->outbound.whitelist);
    s->outbound.whitelist = json_array();
    s->outbound.allow_all = 0;
    while (p && *p) {
        char cc[16];
        size_t n = strcspn(p, ","), i, j = 0;
        for (i = 0; i < n && j + 1 < sizeof cc; i++)
            if (p[i] != ' ')
                cc[j++] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
        cc[j] = '\0';
        if (!strcmp(cc, "all"))
            s->outbound.allow_all = 1;
        else if (j)
            json_array_append_new(s->outbound.whitelist, json_string(cc));
        p += n;
        if (*p == ',')
            p++;
    }
}

static void free_rules(sim_t *s)
{
    sim_faults_clear(s);
    while (s->scripts) {
        sim_script *sc = s->scripts;
        s->scripts = sc->next;
        json_decref(sc->outcome);
        free(sc);
    }
}

int sim_state_reset(sim_t *s)
{
    const sim_config *cfg = s->cfg;

    s->epoch++;
    sim_calls_clear(s);
    sim_messages_clear(s);
    sim_extras_flows_clear(s);
    free_rules(s);

    set_str(&s->customer.name, "VoIPBin simulator");
    set_str(&s->customer.detail, "");
    set_str(&s->customer.email, "sim@example.com");
    set_str(&s->customer.phone_number, "");
    set_str(&s->customer.address, "");
    set_str(&s->customer.webhook_method, cfg->webhook_method);
    set_str(&s->customer.webhook_uri, cfg->webhook_uri);
    set_str(&s->customer.webhook_secret, cfg->webhook_secret);
    s->customer.tm_update = sim_now_us();

    set_str(&s->outbound.name, "default");
    set_str(&s->outbound.detail, "");
    load_whitelist(s, cfg->whitelist);
    json_decref(s->outbound.codecs);
    s->outbound.codecs = json_array();
    s->outbound.default_source_id[0] = '\0';
    s->outbound.tm_update = sim_now_us();

    s->account.balance = cfg->balance;
    sim_strlcpy(s->account.status, "active", sizeof s->account.status);
    sim_strlcpy(s->account.identity, cfg->identity, sizeof s->account.identity);
    return 0;
}

static int load_numbers(sim_t *s, const char *list, char *err, size_t errlen)
{
    const char *p = list;

    while (p && *p) {
        size_t n = strcspn(p, ","), i, j = 0;
        char num[24];
        sim_number *nn;
        for (i = 0; i < n && j + 1 < sizeof num; i++)
            if (p[i] != ' ')
                num[j++] = p[i];
        num[j] = '\0';
        p += n;
        if (*p == ',')
            p++;
        if (!j)
            continue;
        if (!sim_is_e164(num)) {
            snprintf(err, errlen, "--numbers: not an E.164 number: %s", num);
            return -1;
        }
        nn = realloc(s->numbers, (s->n_numbers + 1) * sizeof *nn);
        if (!nn)
            return -1;
        s->numbers = nn;
        sim_uuid(nn[s->n_numbers].id);
        sim_strlcpy(nn[s->n_numbers].number, num, sizeof nn[s->n_numbers].number);
        s->n_numbers++;
    }
    return 0;
}

int sim_state_init(sim_t *s, const sim_config *cfg, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->cfg = cfg;
    sim_uuid(s->customer_id);
    sim_uuid(s->outbound.id);
    randombytes_buf(s->jwt_key, sizeof s->jwt_key);
    s->customer.tm_create = s->outbound.tm_create = sim_now_us();
    if (load_numbers(s, cfg->numbers, err, errlen))
        return -1;
    if (sim_index_init(&s->calls) || sim_index_init(&s->messages) || sim_index_init(&s->flows) ||
        sim_sched_init(&s->sched, &s->lock)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->wh = sim_wh_new(&s->lock, (int)cfg->webhook_workers, cfg->time_scale, cfg->ssrf_guard,
                       &s->epoch);
    if (!s->wh) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (cfg->audio_dir && *cfg->audio_dir &&
        !(s->audio = sim_audio_new(&s->lock, cfg->audio_dir))) {
        snprintf(err, errlen, "cannot set up audio in %s", cfg->audio_dir);
        return -1;
    }
    return sim_state_reset(s);
}

void sim_state_free(sim_t *s)
{
    sim_calls_clear(s);
    sim_messages_clear(s);
    sim_extras_flows_clear(s);
    free_rules(s);
    sim_index_free(&s->calls);
    sim_index_free(&s->messages);
    sim_index_free(&s->flows);
    free(s->customer.name);
    free(s->customer.detail);
    free(s->customer.email);
    free(s->customer.phone_number);
    free(s->customer.address);
    free(s->customer.webhook_method);
    free(s->customer.webhook_uri);
    free(s->customer.webhook_secret);
    free(s->outbound.name);
    free(s->outbound.detail);
    json_decref(s->outbound.whitelist);
    json_decref(s->outbound.codecs);
    free(s->numbers);
    pthread_mutex_destroy(&s->lock);
}
