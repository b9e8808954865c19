/* SPDX-License-Identifier: Apache-2.0 */
/* TLS on a listener: a certificate chain and its key, from PEM files, served
 * through libmicrohttpd's certificate callback so that they can be loaded
 * again (SIGHUP) without stopping the listener: a handshake takes whatever
 * pair is current when it starts. Two slots, one per listener that can have
 * TLS (the API and the webhook). Thread-safe. */
#ifndef OTP_TLS_H
#define OTP_TLS_H

#include <stddef.h>

typedef enum { OTP_TLS_API, OTP_TLS_WEBHOOK, OTP_TLS_SLOTS } otp_tls_slot_t;

/* Loads the slot's pair (cert_file: the chain, leaf first; key_file: its
 * private key). -1 with errstr naming the setting (cert_setting or
 * key_setting); the slot keeps its previous pair then. */
int otp_tls_load(otp_tls_slot_t slot, const char *cert_setting, const char *cert_file,
                 const char *key_setting, const char *key_file, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Loads every slot that was loaded before again from the same files. The
 * number of slots that failed (each logged, each keeping its pair). */
int otp_tls_reload(void);

/* The callback for MHD_OPTION_HTTPS_CERT_CALLBACK of the slot's listener
 * (a gnutls_certificate_retrieve_function2). */
void *otp_tls_callback(otp_tls_slot_t slot);

/* Frees every slot (at exit). */
void otp_tls_clear(void);

#endif
