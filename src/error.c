/* error.c - messages for the codes of error.h. */
#include "smtphook/error.h"

/* sh_strerror - the message for an error code; never NULL. */
const char *sh_strerror(int err)
{
    switch (err) {
    case SH_OK:
        return "success";
#define SH_ERROR_CASE(name, value, text)                                                           \
    case SH_E##name:                                                                               \
        return text;
        SH_ERRNO_MAP(SH_ERROR_CASE)
#undef SH_ERROR_CASE
    default:
        return "unknown error";
    }
}
