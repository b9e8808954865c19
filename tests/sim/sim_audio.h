/* SPDX-License-Identifier: Apache-2.0 */
/* sim_audio: renders talk texts to WAV files with espeak-ng (SSML, -m) in one background
 * thread, so the scheduler never waits on a synthesizer. */
#ifndef SIM_AUDIO_H
#define SIM_AUDIO_H

#include <pthread.h>
#include <stddef.h>

typedef struct sim_audio_owner_ops {
    /* Lock held. wav NULL on failure (error says why); seconds from the WAV header. */
    void (*done)(void *owner, size_t talk_idx, const char *wav, double seconds, const char *error);
    void (*release)(void *owner);
} sim_audio_owner_ops;

typedef struct sim_audio sim_audio;

sim_audio *sim_audio_new(pthread_mutex_t *lock, const char *dir);
int sim_audio_start(sim_audio *a);
/* Lock NOT held; pending jobs are released unrendered. NULL-safe. */
void sim_audio_destroy(sim_audio *a);
/* Queues one talk (lock held). Takes the owner reference the caller counted. name is the file
 * name inside the directory (e.g. "<call_id>-1.wav"). */
int sim_audio_render(sim_audio *a, const char *ssml, const char *language, const char *name,
                     void *owner, const sim_audio_owner_ops *ops, size_t talk_idx);

/* Seconds of audio in a PCM WAV file, from its header; < 0 on error. */
double sim_wav_seconds(const char *path);

#endif
