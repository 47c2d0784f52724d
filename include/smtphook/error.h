/* error.h - error codes shared by every smtphook module.
 *
 * Functions return 0 on success or one of the negative codes below. The codes and
 * their messages live in one table (SH_ERRNO_MAP), like libuv's UV_ERRNO_MAP.
 * A protocol problem is never an error: it becomes an SMTP reply. */
#ifndef SMTPHOOK_ERROR_H
#define SMTPHOOK_ERROR_H

#define SH_ERRNO_MAP(X)                                                                            \
    X(NOMEM, -1, "out of memory")                                                                  \
    X(IO, -2, "input/output error")                                                                \
    X(INVAL, -3, "invalid argument")                                                               \
    X(CONFIG, -4, "invalid configuration")                                                         \
    X(RANGE, -5, "value out of range")                                                             \
    X(NOTFOUND, -6, "not found")                                                                   \
    X(CANCELED, -7, "operation canceled")                                                          \
    X(TOOBIG, -8, "too big")                                                                       \
    X(NET, -9, "network error")                                                                    \
    X(AGAIN, -10, "not available yet")                                                             \
    X(NOSPACE, -11, "no space left")

enum sh_error {
    SH_OK = 0,
#define SH_ERROR_ENUM(name, value, text) SH_E##name = (value),
    SH_ERRNO_MAP(SH_ERROR_ENUM)
#undef SH_ERROR_ENUM
};

/* sh_strerror - the message for an error code; never NULL. */
const char *sh_strerror(int err);

#endif
