/* base64.c - RFC 4648 base64 (see base64.h). */
#include "smtphook/base64.h"

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64_encode - see base64.h. */
size_t base64_encode(const void *src, size_t len, char *dst)
{
    const uint8_t *s = src;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        dst[o++] = base64_alphabet[v >> 18];
        dst[o++] = base64_alphabet[(v >> 12) & 63];
        dst[o++] = base64_alphabet[(v >> 6) & 63];
        dst[o++] = base64_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)s[i + 1] << 8;
        dst[o++] = base64_alphabet[v >> 18];
        dst[o++] = base64_alphabet[(v >> 12) & 63];
        dst[o++] = i + 1 < len ? base64_alphabet[(v >> 6) & 63] : '=';
        dst[o++] = '=';
    }
    dst[o] = '\0';
    return o;
}

/* base64_value - the 6 bits of an alphabet character, or -1. */
static int base64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* base64_decode - see base64.h. */
long base64_decode(const char *src, size_t len, uint8_t *dst)
{
    if (len % 4 != 0)
        return -1;
    long o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int pad = 0;
        if (i + 4 == len)
            pad = (src[i + 3] == '=') + (src[i + 3] == '=' && src[i + 2] == '=');
        uint32_t v = 0;
        for (int k = 0; k < 4; k++) {
            int x = k >= 4 - pad ? 0 : base64_value(src[i + (size_t)k]);
            if (x < 0)
                return -1;
            v = v << 6 | (uint32_t)x;
        }
        /* Unused bits must be zero: "QQ==" is "A", "QR==" is refused. */
        if ((pad == 1 && (v & 0xff) != 0) || (pad == 2 && (v & 0xffff) != 0))
            return -1;
        dst[o++] = (uint8_t)(v >> 16);
        if (pad < 2)
            dst[o++] = (uint8_t)(v >> 8);
        if (pad < 1)
            dst[o++] = (uint8_t)v;
    }
    return o;
}
