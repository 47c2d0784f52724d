/* log.h - one-line log records on stderr, and the wall clock they are stamped with.
 *
 * Every record is a single line: "<UTC time> <level> <message>", or with LOG_FORMAT_JSON one
 * JSON object with the same fields, {"time":"...","level":"...","msg":"..."}, for log
 * collectors. Messages that carry client-controlled text must pass it through
 * log_sanitize() first. log_unix_ms() is the process's one wall clock: envelope times and
 * log lines agree. */
#ifndef SMTPHOOK_LOG_H
#define SMTPHOOK_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

/* log_unix_ms - the wall clock: Unix time in milliseconds (0 if it cannot be read). */
int64_t log_unix_ms(void);

enum log_format {
    LOG_FORMAT_TEXT = 0, /* "<time> <level> <message>" */
    LOG_FORMAT_JSON,     /* {"time": ..., "level": ..., "msg": ...} */
};

/* log_set_format - how records are written (default LOG_FORMAT_TEXT). */
void log_set_format(enum log_format format);

/* log_set_level - records above this level are dropped (default LOG_LEVEL_INFO). */
void log_set_level(enum log_level level);

/* log_level_parse - "error", "warn", "info", "debug" -> level; -1 if unknown. */
int log_level_parse(const char *name);

/* log_write - format and write one record. */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* log_sanitize - copy src into dst (dstlen > 0), replacing bytes outside printable
 * ASCII with '?' so that client text can never forge or split a log line. Returns dst. */
char *log_sanitize(char *dst, size_t dstlen, const char *src, size_t srclen);

#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
