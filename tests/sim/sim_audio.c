/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_audio.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim_util.h"

extern char **environ;

typedef struct ajob {
    char *ssml, *lang, *path;
    void *owner;
    const sim_audio_owner_ops *ops;
    size_t idx;
    struct ajob *next;
} ajob;

struct sim_audio {
    pthread_mutex_t *lock;
    pthread_cond_t cond;
    pthread_t thread;
    int running, started;
    char *dir;
    ajob *head, *tail;
};

double sim_wav_seconds(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char h[12], ch[8];
    uint32_t byte_rate = 0;
    double secs = -1;

    if (!f)
        return -1;
    if (fread(h, 1, 12, f) != 12 || memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4))
        goto out;
    while (fread(ch, 1, 8, f) == 8) {
        uint32_t sz =
            (uint32_t)ch[4] | (uint32_t)ch[5] << 8 | (uint32_t)ch[6] << 16 | (uint32_t)ch[7] << 24;
        if (!memcmp(ch, "fmt ", 4)) {
            unsigned char fmt[16];
            if (sz < 16 || fread(fmt, 1, 16, f) != 16)
                goto out;
            byte_rate = (uint32_t)fmt[8] | (uint32_t)fmt[9] << 8 | (uint32_t)fmt[10] << 16 |
                        (uint32_t)fmt[11] << 24;
            if (fseek(f, (long)(sz - 16 + (sz & 1)), SEEK_CUR))
                goto out;
        } else if (!memcmp(ch, "data", 4)) {
            if (byte_rate)
                secs = (double)sz / byte_rate;
            goto out;
        } else if (fseek(f, (long)(sz + (sz & 1)), SEEK_CUR))
            goto out;
    }
out:
    fclose(f);
    return secs;
}

static int espeak(const char *voice, const char *ssml, const char *path)
{
    posix_spawn_file_actions_t fa;
    char *argv[] = {"espeak-ng", "-m", "-v", (char *)voice, "-w", (char *)path, (char *)ssml, NULL};
    pid_t pid;
    int st = -1;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid, "espeak-ng", &fa, NULL, argv, environ)) {
        posix_spawn_file_actions_destroy(&fa);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* BCP-47 → espeak-ng voice: the full tag, then the language alone, then English. */
static int render(const ajob *j, char *voice_used, size_t n)
{
    char full[32], base[32];
    size_t i;

    sim_strlcpy(full, j->lang && *j->lang ? j->lang : "en-US", sizeof full);
    for (i = 0; full[i]; i++)
        if (full[i] >= 'A' && full[i] <= 'Z')
            full[i] = (char)(full[i] + 32);
    sim_strlcpy(base, full, sizeof base);
    if (strchr(base, '-'))
        *strchr(base, '-') = '\0';
    if (!strcmp(base, "zh"))
        sim_strlcpy(base, "cmn", sizeof base);
    if (!espeak(full, j->ssml, j->path)) {
        sim_strlcpy(voice_used, full, n);
        return 0;
    }
    if (!espeak(base, j->ssml, j->path)) {
        sim_strlcpy(voice_used, base, n);
        return 0;
    }
    sim_strlcpy(voice_used, "en", n);
    return espeak("en", j->ssml, j->path);
}

static void ajob_free(ajob *j)
{
    free(j->ssml);
    free(j->lang);
    free(j->path);
    free(j);
}

static void *run(void *arg)
{
    sim_audio *a = arg;

    pthread_mutex_lock(a->lock);
    while (a->running) {
        ajob *j = a->head;
        char voice[32], err[128];
        double secs = -1;
        int rc;

        if (!j) {
            pthread_cond_wait(&a->cond, a->lock);
            continue;
        }
        a->head = j->next;
        if (!a->head)
            a->tail = NULL;
        pthread_mutex_unlock(a->lock);
        err[0] = '\0';
        rc = render(j, voice, sizeof voice);
        if (!rc)
            secs = sim_wav_seconds(j->path);
        if (rc || secs < 0)
            snprintf(err, sizeof err, "espeak-ng failed (voice %s)", voice);
        pthread_mutex_lock(a->lock);
        j->ops->done(j->owner, j->idx, err[0] ? NULL : j->path, secs, err[0] ? err : NULL);
        j->ops->release(j->owner);
        ajob_free(j);
    }
    pthread_mutex_unlock(a->lock);
    return NULL;
}

sim_audio *sim_audio_new(pthread_mutex_t *lock, const char *dir)
{
    sim_audio *a = calloc(1, sizeof *a);

    if (!a)
        return NULL;
    a->lock = lock;
    a->dir = strdup(dir);
    pthread_cond_init(&a->cond, NULL);
    mkdir(dir, 0755);
    return a;
}

int sim_audio_start(sim_audio *a)
{
    a->running = 1;
    if (pthread_create(&a->thread, NULL, run, a))
        return -1;
    a->started = 1;
    return 0;
}

void sim_audio_destroy(sim_audio *a)
{
    if (!a)
        return;
    pthread_mutex_lock(a->lock);
    a->running = 0;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(a->lock);
    if (a->started)
        pthread_join(a->thread, NULL);
    pthread_mutex_lock(a->lock);
    while (a->head) {
        ajob *j = a->head;
        a->head = j->next;
        j->ops->release(j->owner);
        ajob_free(j);
    }
    pthread_mutex_unlock(a->lock);
    pthread_cond_destroy(&a->cond);
    free(a->dir);
    free(a);
}

int sim_audio_render(sim_audio *a, const char *ssml, const char *language, const char *name,
                     void *owner, const sim_audio_owner_ops *ops, size_t talk_idx)
{
    ajob *j = calloc(1, sizeof *j);
    size_t n;

    if (!j)
        goto fail;
    n = strlen(a->dir) + strlen(name) + 2;
    j->path = malloc(n);
    j->ssml = strdup(ssml);
    j->lang = sim_strdup(language);
    if (!j->path || !j->ssml || !j->lang)
        goto fail;
    snprintf(j->path, n, "%s/%s", a->dir, name);
    j->owner = owner;
    j->ops = ops;
    j->idx = talk_idx;
    if (a->tail)
        a->tail->next = j;
    else
        a->head = j;
    a->tail = j;
    pthread_cond_signal(&a->cond);
    return 0;
fail:
    if (j)
        ajob_free(j);
    ops->release(owner);
    return -1;
}
