/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_tls.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "otp_log.h"

#define CHAIN_MAX 8

/* One loaded pair. */
typedef struct pair {
    gnutls_pcert_st pcert[CHAIN_MAX];
    unsigned n;
    gnutls_privkey_t key;
} pair_t;

/* A slot's current pair, and the one before it: a handshake that took the
 * previous pair just before a reload may still be using it, so a pair is
 * freed only when a second reload retires it. */
static struct slot {
    pthread_mutex_t lock;
    pair_t *current, *previous;
    char cert_setting[48], key_setting[48];
    char cert_file[512], key_file[512];
} slots[OTP_TLS_SLOTS] = {
    {.lock = PTHREAD_MUTEX_INITIALIZER},
    {.lock = PTHREAD_MUTEX_INITIALIZER},
};

static void pair_free(pair_t *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->n; i++)
        gnutls_pcert_deinit(&p->pcert[i]);
    if (p->key)
        gnutls_privkey_deinit(p->key);
    gnutls_free(p);
}

static pair_t *pair_load(const struct slot *s, char *err, size_t errsz)
{
    gnutls_datum_t cert = {NULL, 0}, key = {NULL, 0};
    pair_t *p = gnutls_calloc(1, sizeof(*p));
    int rc;

    if (!p) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    p->n = CHAIN_MAX;
    if ((rc = gnutls_load_file(s->cert_file, &cert)) < 0 ||
        (rc = gnutls_pcert_list_import_x509_raw(p->pcert, &p->n, &cert, GNUTLS_X509_FMT_PEM, 0)) <
            0) {
        snprintf(err, errsz, "%s=%s: not a readable PEM certificate chain (%s)", s->cert_setting,
                 s->cert_file, gnutls_strerror(rc));
        p->n = 0;
        goto fail;
    }
    if ((rc = gnutls_load_file(s->key_file, &key)) < 0 || (rc = gnutls_privkey_init(&p->key)) < 0 ||
        (rc = gnutls_privkey_import_x509_raw(p->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        snprintf(err, errsz, "%s=%s: not a readable PEM private key (%s)", s->key_setting,
                 s->key_file, gnutls_strerror(rc));
        goto fail;
    }
    gnutls_free(cert.data);
    gnutls_memset(key.data, 0, key.size);
    gnutls_free(key.data);
    return p;
fail:
    gnutls_free(cert.data);
    if (key.data)
        gnutls_memset(key.data, 0, key.size);
    gnutls_free(key.data);
    pair_free(p);
    return NULL;
}

/* Puts p in the slot; the pair two loads old is freed. */
static void install(struct slot *s, pair_t *p)
{
    pair_t *retired;

    pthread_mutex_lock(&s->lock);
    retired = s->previous;
    s->previous = s->current;
    s->current = p;
    pthread_mutex_unlock(&s->lock);
    pair_free(retired);
}

int otp_tls_load(otp_tls_slot_t slot, const char *cert_setting, const char *cert_file,
                 const char *key_setting, const char *key_file, char *err, size_t errsz)
{
    struct slot *s = &slots[slot];
    pair_t *p;

    snprintf(s->cert_setting, sizeof(s->cert_setting), "%s", cert_setting);
    snprintf(s->key_setting, sizeof(s->key_setting), "%s", key_setting);
    snprintf(s->cert_file, sizeof(s->cert_file), "%s", cert_file);
    snprintf(s->key_file, sizeof(s->key_file), "%s", key_file);
    p = pair_load(s, err, errsz);
    if (!p)
        return -1;
    install(s, p);
    return 0;
}

int otp_tls_reload(void)
{
    int failed = 0;

    for (int i = 0; i < OTP_TLS_SLOTS; i++) {
        struct slot *s = &slots[i];
        char err[600];
        pair_t *p;

        if (!s->cert_file[0])
            continue;
        p = pair_load(s, err, sizeof(err));
        if (!p) {
            otp_error("tls_reload_failed", "error=\"%s\" kept=previous", err);
            failed++;
            continue;
        }
        install(s, p);
        otp_info("tls_reloaded", "certificate=%s", s->cert_setting);
    }
    return failed;
}

static int retrieve(struct slot *s, gnutls_pcert_st **pcert, unsigned int *pcert_length,
                    gnutls_privkey_t *pkey)
{
    int rc = -1;

    pthread_mutex_lock(&s->lock);
    if (s->current) {
        *pcert = s->current->pcert;
        *pcert_length = s->current->n;
        *pkey = s->current->key;
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* One callback per slot: GnuTLS hands the callback no pointer of ours. */
static int api_cb(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                  const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                  gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)session;
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    return retrieve(&slots[OTP_TLS_API], pcert, pcert_length, pkey);
}

static int webhook_cb(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                      const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                      gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)session;
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    return retrieve(&slots[OTP_TLS_WEBHOOK], pcert, pcert_length, pkey);
}

void *otp_tls_callback(otp_tls_slot_t slot)
{
    gnutls_certificate_retrieve_function2 *cb = slot == OTP_TLS_API ? api_cb : webhook_cb;
    return (void *)cb;
}

void otp_tls_clear(void)
{
    for (int i = 0; i < OTP_TLS_SLOTS; i++) {
        pair_t *cur, *prev;

        pthread_mutex_lock(&slots[i].lock);
        cur = slots[i].current;
        prev = slots[i].previous;
        slots[i].current = slots[i].previous = NULL;
        pthread_mutex_unlock(&slots[i].lock);
        pair_free(cur);
        pair_free(prev);
    }
}
