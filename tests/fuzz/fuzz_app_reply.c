/* fuzz_app_reply.c - fuzz target: one Smtphook-Reply header or reply_map value through
 * app_reply_parse, then the accepted reply through app_reply_agrees.
 *
 * Input layout: h[0] bit 0 = APP_REPLY_CODE_OPTIONAL (else APP_REPLY_FULL), so a text seed
 * starting with 'F' is FULL and one with 'O' is CODE_OPTIONAL; the rest is the value.
 * Invariants (abort on violation): a refusal has a reason and leaves the reply cleared; an
 * accepted reply has no reason, a code of 250 or 4yz/5yz (y <= 5) but not 421, an enhanced
 * code of RFC 3463 §2's form whose class is the code's first digit, a text of printable
 * ASCII within APP_REPLY_TEXT_MAX that the value ends with; FULL has every part, a text
 * never comes without an enhanced code; the value held no byte but printable ASCII and
 * tabs; "code esc text" re-serialized (plainly, and with blanks around and between the
 * parts) parses back to the same reply; what FULL accepts CODE_OPTIONAL accepts alike; an
 * accepted reply agrees with an HTTP status exactly when both are 2xx or neither is.
 *
 * Must not include libuv, curl or jansson. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtphook/app_reply.h"

#define SERIAL_MAX (16 + APP_REPLY_ESC_MAX + APP_REPLY_TEXT_MAX) /* "code esc text" + blanks */

/* check_cleared - a refused value leaves the reply as app_reply.h says. */
static void check_cleared(const struct app_reply *r)
{
    FUZZ_CHECK(r->code == 0 && r->esc[0] == '\0' && r->text[0] == '\0');
}

/* esc_well_formed - class "." 1*3DIGIT "." 1*3DIGIT, class 2, 4 or 5, written independently
 * of app_reply.c. */
static bool esc_well_formed(const char *esc)
{
    if (esc[0] != '2' && esc[0] != '4' && esc[0] != '5')
        return false;
    if (esc[1] != '.')
        return false;
    size_t i = 2;
    for (int part = 0; part < 2; part++) {
        size_t digits = 0;
        while (esc[i] >= '0' && esc[i] <= '9') {
            digits++;
            i++;
        }
        if (digits < 1 || digits > 3)
            return false;
        if (part == 0 && esc[i++] != '.')
            return false;
    }
    return esc[i] == '\0';
}

/* check_reply - an accepted reply keeps app_reply.h's promises. */
static void check_reply(const struct app_reply *r, enum app_reply_form form)
{
    unsigned cls = r->code / 100;
    FUZZ_CHECK(r->code == 250 || ((cls == 4 || cls == 5) && r->code / 10 % 10 <= 5));
    FUZZ_CHECK(r->code != 421);

    const char *nul = memchr(r->esc, '\0', sizeof(r->esc));
    FUZZ_CHECK(nul != NULL);
    if (r->esc[0] != '\0') {
        FUZZ_CHECK(esc_well_formed(r->esc));
        FUZZ_CHECK((unsigned)(r->esc[0] - '0') == cls);
    }
    nul = memchr(r->text, '\0', sizeof(r->text));
    FUZZ_CHECK(nul != NULL);
    size_t n = (size_t)(nul - r->text);
    FUZZ_CHECK(n <= APP_REPLY_TEXT_MAX);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(r->text[i] >= 0x20 && r->text[i] <= 0x7E);
    FUZZ_CHECK(n == 0 || (r->text[0] != ' ' && r->text[n - 1] != ' '));

    if (form == APP_REPLY_FULL)
        FUZZ_CHECK(r->esc[0] != '\0' && r->text[0] != '\0');
    FUZZ_CHECK(r->text[0] == '\0' || r->esc[0] != '\0');
}

/* serialize - "code[ esc[ text]]" with the given blanks before, between and after; the
 * length written. */
static size_t serialize(const struct app_reply *r, const char *lead, const char *sep,
                        const char *tail, char *out)
{
    int n;
    if (r->esc[0] == '\0')
        n = snprintf(out, SERIAL_MAX, "%s%03u%s", lead, r->code, tail);
    else if (r->text[0] == '\0')
        n = snprintf(out, SERIAL_MAX, "%s%03u%s%s%s", lead, r->code, sep, r->esc, tail);
    else
        n = snprintf(out, SERIAL_MAX, "%s%03u%s%s%s%s%s", lead, r->code, sep, r->esc, sep, r->text,
                     tail);
    FUZZ_CHECK(n > 0 && (size_t)n < SERIAL_MAX);
    return (size_t)n;
}

/* check_round_trip - the reply, written out again, reads back the same in its form and in
 * CODE_OPTIONAL. */
static void check_round_trip(const struct app_reply *r, enum app_reply_form form)
{
    static const char *const blanks[][3] = {
        {"", " ", ""},
        {" \t", "\t \t", "\t  "},
        {"\t", "   ", " "},
    };
    for (size_t b = 0; b < sizeof(blanks) / sizeof(blanks[0]); b++) {
        char text[SERIAL_MAX];
        size_t n = serialize(r, blanks[b][0], blanks[b][1], blanks[b][2], text);
        char *copy = malloc(n);
        FUZZ_CHECK(copy != NULL);
        memcpy(copy, text, n);
        struct app_reply again;
        const char *why = NULL;
        FUZZ_CHECK(app_reply_parse(copy, n, form, &again, &why));
        FUZZ_CHECK(why == NULL);
        FUZZ_CHECK(memcmp(&again, r, sizeof(again)) == 0);
        FUZZ_CHECK(app_reply_parse(copy, n, APP_REPLY_CODE_OPTIONAL, &again, NULL));
        FUZZ_CHECK(memcmp(&again, r, sizeof(again)) == 0);
        free(copy);
    }
}

/* check_agrees - app_reply_agrees against the rule of app_reply.h, for statuses around
 * every class boundary. */
static void check_agrees(const struct app_reply *r)
{
    static const long statuses[] = {-1,  0,   99,  100, 199, 200, 204, 299, 300,
                                    399, 400, 404, 499, 500, 599, 600, 1000};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        bool success = statuses[i] >= 200 && statuses[i] <= 299;
        FUZZ_CHECK(app_reply_agrees(r, statuses[i]) == (success == (r->code == 250)));
    }
}

/* LLVMFuzzerTestOneInput - one value. It is copied to an allocation of its exact size, so
 * ASan catches a read past its end. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum app_reply_form form = (data[0] & 1) ? APP_REPLY_CODE_OPTIONAL : APP_REPLY_FULL;
    size_t len = size - 1;
    char *value = malloc(len ? len : 1);
    FUZZ_CHECK(value != NULL);
    memcpy(value, data + 1, len);

    struct app_reply r;
    memset(&r, 0x5A, sizeof(r));
    const char *why = "untouched";
    bool ok = app_reply_parse(value, len, form, &r, &why);

    struct app_reply twice;
    FUZZ_CHECK(app_reply_parse(value, len, form, &twice, NULL) == ok);
    FUZZ_CHECK(memcmp(&twice, &r, sizeof(r)) == 0);

    if (!ok) {
        FUZZ_CHECK(why != NULL && why[0] != '\0');
        check_cleared(&r);
        /* What CODE_OPTIONAL refuses, FULL refuses too. */
        if (form == APP_REPLY_CODE_OPTIONAL)
            FUZZ_CHECK(!app_reply_parse(value, len, APP_REPLY_FULL, &twice, NULL));
        free(value);
        return 0;
    }
    FUZZ_CHECK(why == NULL);
    check_reply(&r, form);

    /* Only printable ASCII and the blanks around and between the parts were accepted. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        FUZZ_CHECK((c >= 0x20 && c <= 0x7E) || c == '\t');
    }
    /* The value ends with the text, apart from trailing blanks. */
    size_t end = len;
    while (end > 0 && (value[end - 1] == ' ' || value[end - 1] == '\t'))
        end--;
    size_t tlen = strlen(r.text);
    FUZZ_CHECK(tlen <= end && memcmp(value + end - tlen, r.text, tlen) == 0);

    if (form == APP_REPLY_FULL) {
        FUZZ_CHECK(app_reply_parse(value, len, APP_REPLY_CODE_OPTIONAL, &twice, NULL));
        FUZZ_CHECK(memcmp(&twice, &r, sizeof(r)) == 0);
    } else if (r.text[0] != '\0') {
        FUZZ_CHECK(app_reply_parse(value, len, APP_REPLY_FULL, &twice, NULL));
        FUZZ_CHECK(memcmp(&twice, &r, sizeof(r)) == 0);
    }
    check_round_trip(&r, form);
    check_agrees(&r);
    free(value);
    return 0;
}
