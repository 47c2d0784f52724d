/* utf8.c - UTF-8 validation in pieces (see utf8.h). */
#include "smtphook/utf8.h"

#include <string.h>

/* utf8_feed - see utf8.h; the table of RFC 3629 §4. */
void utf8_feed(struct utf8_state *u, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n && !u->bad; i++) {
        if (u->need == 0) { /* ASCII runs a word at a time: most mail is mostly ASCII */
            uint64_t w;
            while (i + sizeof(w) <= n) {
                memcpy(&w, p + i, sizeof(w));
                if ((w & UINT64_C(0x8080808080808080)) != 0)
                    break;
                i += sizeof(w);
            }
            if (i >= n)
                break;
        }
        unsigned char c = p[i];
        if (u->need > 0) {
            if (c < u->lo || c > u->hi) {
                u->bad = true;
                break;
            }
            u->need--;
            u->lo = 0x80;
            u->hi = 0xbf;
            continue;
        }
        if (c < 0x80)
            continue;
        u->lo = 0x80;
        u->hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            u->need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            u->need = 2;
            if (c == 0xe0)
                u->lo = 0xa0; /* no overlong 3-byte form */
            else if (c == 0xed)
                u->hi = 0x9f; /* no surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            u->need = 3;
            if (c == 0xf0)
                u->lo = 0x90; /* no overlong 4-byte form */
            else if (c == 0xf4)
                u->hi = 0x8f; /* nothing past U+10FFFF */
        } else {
            u->bad = true; /* a continuation byte without a lead, C0, C1, F5..FF */
        }
    }
}

/* utf8_done - see utf8.h. */
bool utf8_done(const struct utf8_state *u)
{
    return !u->bad && u->need == 0;
}

/* utf8_valid - see utf8.h. */
bool utf8_valid(const void *data, size_t n)
{
    struct utf8_state u = {0};
    utf8_feed(&u, data, n);
    return utf8_done(&u);
}
