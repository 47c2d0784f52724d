/* log.c - one-line log records on stderr, with a UTC timestamp. */
#include "smtphook/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum log_level log_threshold = LOG_LEVEL_INFO;
static enum log_format log_format = LOG_FORMAT_TEXT;

#define LOG_LINE_MAX 2048 /* bytes of one record, its newline included */

static const char *const log_level_names[] = {"error", "warn", "info", "debug"};

/* log_unix_ms - see log.h. */
int64_t log_unix_ms(void)
{
    struct timeval tv;
    if (gettimeofday(&tv, NULL) != 0)
        return 0;
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* log_set_format - see log.h. */
void log_set_format(enum log_format format)
{
    log_format = format;
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

/* log_json_string - append msg to line (at n, room up to max) as the body of a JSON string:
 * '"' and '\\' escaped, control bytes as \u00XX (messages are sanitized, but a format
 * argument may still hold one). Returns the new length; what does not fit is cut, never an
 * escape in half. */
static size_t log_json_string(char *line, size_t n, size_t max, const char *msg)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        char esc[6];
        size_t k = 0;
        if (*p == '"' || *p == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            memcpy(esc, "\\u00", 4);
            k = 4;
            esc[k++] = hex[*p >> 4];
            esc[k++] = hex[*p & 0x0f];
        } else {
            esc[k++] = (char)*p;
        }
        if (n + k > max)
            break;
        memcpy(line + n, esc, k);
        n += k;
    }
    return n;
}

/* log_write - format one record into a local buffer and write it with one call, so that
 * records never interleave. */
void log_write(enum log_level level, const char *fmt, ...)
{
    if (level > log_threshold)
        return;

    char line[LOG_LINE_MAX];
    char msg[LOG_LINE_MAX];
    int64_t ms = log_unix_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char when[40];
    size_t w = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + w, sizeof(when) - w, ".%03dZ", (int)(ms % 1000));

    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    size_t n;
    if (log_format == LOG_FORMAT_JSON) {
        int k = snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"", when,
                         log_level_names[level]);
        n = k > 0 ? (size_t)k : 0;
        n = log_json_string(line, n, sizeof(line) - 3, msg);
        line[n++] = '"';
        line[n++] = '}';
    } else {
        int k = snprintf(line, sizeof(line), "%s %s %s", when, log_level_names[level], msg);
        n = k > 0 ? (size_t)k : 0;
        if (n > sizeof(line) - 1)
            n = sizeof(line) - 1;
    }
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
