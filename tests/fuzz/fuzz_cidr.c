/* fuzz_cidr.c - fuzz target: cidr_parse on the input, membership of what it accepts.
 *
 * Invariants (abort on violation):
 * - never reads past the input;
 * - an accepted network has a family, a prefix within it and no bit set past the prefix,
 *   and contains its own address; with a prefix shorter than the family's width it also
 *   contains its address with the last bit flipped, and never an address of the other
 *   family but IPv4-mapped IPv6 for IPv4 networks;
 * - cidr_format writes text that cidr_parse reads back as the same network;
 * - a refusal gives a reason.
 * Must not include libuv, curl or jansson. */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtphook/cidr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size > 0 ? size : 1); /* exactly the input: ASan sees overreads */
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    struct cidr net;
    const char *why = NULL;
    if (!cidr_parse(text, size, &net, &why)) {
        FUZZ_CHECK(why != NULL);
        free(text);
        return 0;
    }
    int bits = net.family == AF_INET ? 32 : 128;
    FUZZ_CHECK(net.family == AF_INET || net.family == AF_INET6);
    FUZZ_CHECK(net.prefix <= bits);
    for (int b = net.prefix; b < bits; b++)
        FUZZ_CHECK(((net.addr[b / 8] >> (7 - b % 8)) & 1) == 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    uint8_t *bytes;
    if (net.family == AF_INET) {
        v4->sin_family = AF_INET;
        bytes = (uint8_t *)&v4->sin_addr;
    } else {
        v6->sin6_family = AF_INET6;
        bytes = (uint8_t *)&v6->sin6_addr;
    }
    memcpy(bytes, net.addr, (size_t)bits / 8);
    char again[CIDR_TEXT_MAX];
    struct cidr back;
    const char *back_why = NULL;
    cidr_format(&net, again, sizeof(again));
    FUZZ_CHECK(cidr_parse(again, strlen(again), &back, &back_why));
    FUZZ_CHECK(back.family == net.family && back.prefix == net.prefix &&
               memcmp(back.addr, net.addr, (size_t)bits / 8) == 0);
    FUZZ_CHECK(cidr_contains(&net, (struct sockaddr *)&ss));
    if (net.prefix < bits) {
        bytes[bits / 8 - 1] ^= 1;
        FUZZ_CHECK(cidr_contains(&net, (struct sockaddr *)&ss));
    }
    struct sockaddr_storage other;
    memset(&other, 0, sizeof(other));
    other.ss_family = net.family == AF_INET ? AF_INET6 : AF_INET; /* all-zero address */
    if (net.family == AF_INET6)
        FUZZ_CHECK(!cidr_contains(&net, (struct sockaddr *)&other));
    free(text);
    return 0;
}
