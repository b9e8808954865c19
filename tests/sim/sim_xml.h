/* SPDX-License-Identifier: Apache-2.0 */
/* sim_xml: the TTS input check of the real talk action, and a spoken-length estimate. */
#ifndef SIM_XML_H
#define SIM_XML_H

#include <stddef.h>
#include <stdint.h>

/* 1 when s[0..n) is one well-formed XML document (a root element, optional prolog/comments). */
int sim_xml_wellformed(const char *s, size_t n);

/* 1 when the real TTS would take the text: as it is, or once wrapped in <speak>…</speak>. */
int sim_tts_accepts(const char *text);

/* The SSML document handed to the synthesizer: text itself if it is XML, else wrapped.
 * Caller frees. */
char *sim_tts_ssml(const char *text);

/* Milliseconds a synthesizer would take to say the text: characters of speech,
 * spelled-out say-as runs, and <break> times. For an invalid text, 0. */
int64_t sim_tts_duration_ms(const char *text);

#endif
