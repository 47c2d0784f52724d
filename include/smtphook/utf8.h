/* utf8.h - is a byte stream valid UTF-8 (RFC 3629)? Followed piece by piece, so a message
 * body is checked as it arrives. Overlong forms, surrogates and code points past U+10FFFF
 * are invalid. Pure. */
#ifndef SMTPHOOK_UTF8_H
#define SMTPHOOK_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a stream stands; all zero at its start. */
struct utf8_state {
    bool bad;     /* a byte was not valid where it stood */
    uint8_t need; /* continuation bytes still due for the sequence under way */
    uint8_t lo;   /* the range the next continuation byte must be in */
    uint8_t hi;
};

/* utf8_feed - follow n more bytes. */
void utf8_feed(struct utf8_state *u, const void *data, size_t n);

/* utf8_done - was everything fed valid UTF-8, no sequence left open? */
bool utf8_done(const struct utf8_state *u);

/* utf8_valid - are these n bytes valid UTF-8? */
bool utf8_valid(const void *data, size_t n);

#endif
