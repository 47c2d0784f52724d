/* base64.h - base64 (RFC 4648 §4, standard alphabet, padded), for request bodies, HTTP basic
 * credentials and signatures, and for reading the keys of the signing schemes. Pure. */
#ifndef SMTPHOOK_BASE64_H
#define SMTPHOOK_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* BASE64_SIZE - characters of the padded encoding of n bytes. */
#define BASE64_SIZE(n) ((((n) + 2) / 3) * 4)

/* base64_encode - the padded encoding of len bytes into dst, which has room for
 * BASE64_SIZE(len) characters and a NUL; returns the characters written (without the NUL). */
size_t base64_encode(const void *src, size_t len, char *dst);

/* base64_decode - decode len characters of src into dst (room for len / 4 * 3 bytes): the
 * standard alphabet, padding required, no spaces or line breaks, and the bits after the last
 * byte zero (the canonical form, so one key has one spelling). Returns the bytes written, or
 * -1 for anything else. */
long base64_decode(const char *src, size_t len, uint8_t *dst);

#endif
