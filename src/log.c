/* log.c - one-line log records on stderr, with a UTC timestamp. */
#include "smtphook/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum log_level log_threshold = LOG_LEVEL_INFO;

static const char *const log_level_names[] = {"error", "warn", "info", "debug"};

/* log_unix_ms - see log.h. */
int64_t log_unix_ms(void)
{
    struct timeval tv;
    if (gettimeofday(&tv, NULL) != 0)
        return 0;
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* log_set_level - records above this level are dropped. */
void log_set_level(enum log_level level)
{
    log_threshold = level;
}

/* log_level_parse - a level name -> level, or -1. */
int log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
        if (strcmp(name, log_level_names[i]) == 0)
            return (int)i;
    }
    return -1;
}

/* log_write - format one record into a local buffer and write it with one call, so that
 * records never interleave. */
void log_write(enum log_level level, const char *fmt, ...)
{
    if (level > log_threshold)
        return;

    char line[2048];
    int64_t ms = log_unix_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    int k = snprintf(line + n, sizeof(line) - n, ".%03dZ %s ", (int)(ms % 1000),
                     log_level_names[level]);
    if (k > 0)
        n += (size_t)k;

    va_list ap;
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (k > 0)
        n += (size_t)k;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
    fflush(stderr);
}

/* log_sanitize - printable ASCII only, truncated to dstlen - 1. */
char *log_sanitize(char *dst, size_t dstlen, const char *src, size_t srclen)
{
    size_t n = 0;
    for (size_t i = 0; i < srclen && n + 1 < dstlen; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[n] = '\0';
    return dst;
}
