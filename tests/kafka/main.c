/* SPDX-License-Identifier: Apache-2.0 */
/* otp-kafka-broker: a local Kafka protocol broker for tests and the demo (see kbroker.h).
 * Prints "otp-kafka-broker bootstrap.servers=..." once ready, answers fault-injection commands
 * read from stdin, and runs until SIGTERM or SIGINT (not until stdin closes). */
#include "kbroker.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROPS_MAX 64
#define LINE_MAX_LEN 1024

static volatile sig_atomic_t run = 1;

static void on_signal(int sig)
{
    (void)sig;
    run = 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: otp-kafka-broker [--brokers N] [--topics name:partitions,...]\n"
            "                        [--bootstrap-file FILE] [-X key=value ...]\n"
            "  --brokers N            brokers in the cluster, ids 1..N (default 1)\n"
            "  --topics SPEC          topics to create (default %s)\n"
            "  --bootstrap-file FILE  also write the bootstrap servers to FILE\n"
            "  -X key=value           librdkafka property for the internal handle "
            "(e.g. debug=mock)\n"
            "Reads commands from stdin, one per line, and answers \"ok ...\" or \"error ...\".\n"
            "Send \"help\" for the list. Stops on SIGTERM or SIGINT.\n",
            KBROKER_DEFAULT_TOPICS);
}

/* Writes the string to path through a temporary file and rename(), so that a reader polling
 * for the file never sees it half written. */
static int write_file_atomic(const char *path, const char *text)
{
    char tmp[4096];
    FILE *f;
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());

    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -1;
    f = fopen(tmp, "w");
    if (!f)
        return -1;
    if (fprintf(f, "%s\n", text) < 0) {
        fclose(f);
        unlink(tmp);
        return -1;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void run_command(kbroker_t *kb, const char *line)
{
    char reply[2048];

    while (*line == ' ' || *line == '\t' || *line == '\r')
        line++;
    /* Blank lines and comments get no answer, so scripts may contain them. */
    if (*line == '\0' || *line == '#')
        return;
    kbroker_command(kb, line, reply, sizeof(reply));
    printf("%s\n", reply);
    fflush(stdout);
}

/* Runs every complete line in buf[0..*len) and keeps the incomplete tail. A line longer than
 * the buffer is answered with an error and skipped up to its newline. */
static void drain_lines(kbroker_t *kb, char *buf, size_t *len, int *skipping, int at_eof)
{
    size_t start = 0;

    for (size_t i = 0; i < *len; i++) {
        if (buf[i] != '\n')
            continue;
        buf[i] = '\0';
        if (!*skipping)
            run_command(kb, buf + start);
        *skipping = 0;
        start = i + 1;
    }
    memmove(buf, buf + start, *len - start);
    *len -= start;
    if (at_eof && *len > 0) {
        buf[*len] = '\0';
        if (!*skipping)
            run_command(kb, buf);
        *len = 0;
    } else if (*len == LINE_MAX_LEN) {
        if (!*skipping) {
            printf("error line longer than %d bytes\n", LINE_MAX_LEN);
            fflush(stdout);
        }
        *skipping = 1;
        *len = 0;
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"topics", required_argument, NULL, 't'},
        {"bootstrap-file", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *props[PROPS_MAX + 1] = {NULL};
    size_t prop_cnt = 0;
    const char *topic_spec = KBROKER_DEFAULT_TOPICS;
    const char *bootstrap_file = NULL;
    kbroker_topic_t topics[KBROKER_TOPICS_MAX];
    int topic_cnt;
    long brokers = 1;
    kbroker_t *kb = NULL;
    char errstr[512];
    char buf[LINE_MAX_LEN + 1];
    size_t buf_len = 0;
    int skipping = 0;
    int stdin_open = 1;
    int rc = 1;
    int c;
    struct sigaction sa;
    sigset_t block, orig;

    while ((c = getopt_long(argc, argv, "X:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': {
            char *end = NULL;
            errno = 0;
            brokers = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || brokers < 1 || brokers > KBROKER_BROKERS_MAX) {
                fprintf(stderr, "otp-kafka-broker: --brokers must be 1..%d\n", KBROKER_BROKERS_MAX);
                return 2;
            }
            break;
        }
        case 't':
            topic_spec = optarg;
            break;
        case 'f':
            bootstrap_file = optarg;
            break;
        case 'X':
            if (prop_cnt == PROPS_MAX) {
                fprintf(stderr, "otp-kafka-broker: too many -X options\n");
                return 2;
            }
            props[prop_cnt++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    topic_cnt =
        kbroker_parse_topics(topic_spec, topics, KBROKER_TOPICS_MAX, errstr, sizeof(errstr));
    if (topic_cnt < 0) {
        fprintf(stderr, "otp-kafka-broker: --topics: %s\n", errstr);
        return 2;
    }

    /* The signals stay blocked everywhere (librdkafka's threads inherit the mask) and are
     * delivered only inside ppoll() below, where the handler just clears `run`. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &orig);
    sigdelset(&orig, SIGTERM);
    sigdelset(&orig, SIGINT);

    kb = kbroker_new((int)brokers, topics, (size_t)topic_cnt, props, errstr, sizeof(errstr));
    if (!kb) {
        fprintf(stderr, "otp-kafka-broker: %s\n", errstr);
        goto out;
    }
    if (bootstrap_file && write_file_atomic(bootstrap_file, kbroker_bootstraps(kb)) != 0) {
        fprintf(stderr, "otp-kafka-broker: cannot write %s: %s\n", bootstrap_file, strerror(errno));
        goto out;
    }
    printf("otp-kafka-broker bootstrap.servers=%s\n", kbroker_bootstraps(kb));
    fflush(stdout);

    while (run) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int n = ppoll(&pfd, stdin_open ? 1 : 0, NULL, &orig);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "otp-kafka-broker: poll: %s\n", strerror(errno));
            goto out;
        }
        if (!stdin_open || pfd.revents == 0)
            continue;
        if (pfd.revents & POLLNVAL) {
            stdin_open = 0; /* started with stdin closed */
            continue;
        }
        ssize_t got = read(STDIN_FILENO, buf + buf_len, LINE_MAX_LEN - buf_len);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got <= 0) {
            /* EOF (or a broken stdin) ends the commands, not the broker. */
            drain_lines(kb, buf, &buf_len, &skipping, 1);
            stdin_open = 0;
            continue;
        }
        buf_len += (size_t)got;
        drain_lines(kb, buf, &buf_len, &skipping, 0);
    }
    fprintf(stderr, "otp-kafka-broker: stopping\n");
    rc = 0;

out:
    kbroker_destroy(kb);
    return rc;
}
