/* envelope.c - names for envelope values. */
#include "smtphook/envelope.h"

#include <stddef.h>

/* envelope_body_name - the BODY= keyword, or NULL when none was given. */
const char *envelope_body_name(enum envelope_body body)
{
    switch (body) {
    case ENVELOPE_BODY_7BIT:
        return "7BIT";
    case ENVELOPE_BODY_8BITMIME:
        return "8BITMIME";
    case ENVELOPE_BODY_BINARYMIME:
        return "BINARYMIME";
    case ENVELOPE_BODY_NONE:
    default:
        return NULL;
    }
}
