/* proxy_proto.h - the HAProxy PROXY protocol header (versions 1 and 2) a load balancer sends
 * before anything else on a connection: who the client really is.
 *
 * Pure: no sockets, no allocation, no I/O; reads data[0, len) only. The caller hands over
 * the first bytes received and calls again with more while the answer is NEED_MORE; the
 * client's own bytes start at out->length. From HAProxy's proxy-protocol.txt:
 *
 * Version 1, one text line: "PROXY TCP4 <src> <dst> <sport> <dport>\r\n", the same with
 * TCP6, or "PROXY UNKNOWN" then anything up to the CRLF (spec §2.1: the receiver ignores
 * it). At most PROXY_V1_MAX (107) bytes, CRLF included; a line without its CRLF within them
 * is refused. Exactly one space between the fields, none before the CRLF, upper case as
 * written. After "UNKNOWN" comes a space or the CRLF ("UNKNOWNX" is refused); the rest of an
 * UNKNOWN line may hold any byte but CR and LF. Addresses are read as inet_pton(3) reads
 * them: TCP4 a dotted quad (four decimal parts 0..255, no leading zeros), TCP6 IPv6 text
 * (hex groups, one "::", a trailing dotted quad; not necessarily RFC 5952's canonical form;
 * no zone). Ports are 0..65535 in decimal, no sign, no leading zero except "0" itself. A CR
 * must be followed by LF; a bare LF anywhere is refused.
 *
 * Version 2, binary: the 12-byte signature PROXY_V2_SIG, the version/command byte (high
 * nibble 2, low nibble 0 LOCAL or 1 PROXY), the family/protocol byte, a big-endian 16-bit
 * length of what follows, then that many bytes: the addresses, then TLVs. LOCAL (the proxy's
 * own health check) is accepted whatever its family byte and block hold: both are ignored,
 * as the spec says (§2.2 "discard the protocol block including the family"). With PROXY the
 * family byte is 0x11 (TCP over IPv4: 12 address bytes), 0x21 (TCP over IPv6: 36 bytes) or
 * 0x00 (UNSPEC: taken as local, the block ignored, as the spec asks the receiver to accept
 * it with the real addresses); UDP (0x12, 0x22) and UNIX sockets (0x31, 0x32) are refused,
 * an SMTP listener takes TCP only, and every other value is refused too. The length must
 * hold the addresses of the family. After the addresses of 0x11 and 0x21 the rest must be
 * whole TLVs (type, 16-bit big-endian length, value), the last ending exactly at the end; a
 * PP2_TYPE_CRC32C (0x03) TLV must have 4 bytes and match the CRC32c of the whole header
 * with its value taken as zero, and may appear only once; other TLVs are skipped unread (the
 * sub-TLVs of PP2_TYPE_SSL are not checked). A header is at most PROXY_HEADER_MAX bytes: a
 * length above PROXY_V2_LEN_MAX is refused as soon as it is read, never waited for.
 *
 * Which version: the first byte decides, 'P' version 1 and '\r' version 2; a version the
 * caller does not accept is refused at that byte. NEED_MORE means exactly that the bytes so
 * far begin some header the caller accepts, so "EHLO" is refused at its first byte, a line
 * at its first wrong byte, and one that could only end past 107 bytes as soon as that is
 * certain; at most PROXY_HEADER_MAX bytes are ever needed. */
#ifndef SMTPHOOK_PROXY_PROTO_H
#define SMTPHOOK_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_V1_MAX     107  /* bytes of a version 1 line, CRLF included (spec §2.1) */
#define PROXY_V2_FIXED   16   /* signature, version/command, family, length */
#define PROXY_V2_LEN_MAX 4080 /* our bound on a version 2 length field */
#define PROXY_HEADER_MAX (PROXY_V2_FIXED + PROXY_V2_LEN_MAX) /* 4096 */
#define PROXY_V2_SIG     "\r\n\r\n\0\r\nQUIT\n"              /* 12 bytes */
#define PROXY_V2_SIG_LEN 12
#define PROXY_TLV_CRC32C 0x03 /* PP2_TYPE_CRC32C */

/* Which versions the caller accepts. */
enum proxy_accept {
    PROXY_ACCEPT_V1 = 1,
    PROXY_ACCEPT_V2 = 2,
    PROXY_ACCEPT_ANY = 3, /* V1 | V2 */
};

enum proxy_result {
    PROXY_NEED_MORE = 0, /* a true prefix of an accepted header: call again with more */
    PROXY_DONE,          /* *out holds the header */
    PROXY_INVALID,       /* not a header the accepted versions allow */
};

struct proxy_header {
    int version;                 /* 1 or 2 */
    bool local;                  /* v1 UNKNOWN, v2 LOCAL, v2 PROXY UNSPEC: use the socket's
                                    own addresses; src and dst are then empty */
    struct sockaddr_storage src; /* the client: sockaddr_in or sockaddr_in6 (!local) */
    struct sockaddr_storage dst; /* the address it connected to (!local) */
    socklen_t src_len, dst_len;  /* sizeof(struct sockaddr_in or _in6); 0 when local */
    size_t length;               /* bytes the header took; the client's data follows */
};

/* proxy_parse - look at the first len bytes received on a connection. DONE: *out holds the
 * header (out->length <= len, <= PROXY_HEADER_MAX). NEED_MORE: the bytes so far are a prefix
 * of a header accepted (len < PROXY_HEADER_MAX). INVALID: *why a static reason for the log.
 * *out is cleared but on DONE; *why is NULL but on INVALID (why may be NULL). An accept
 * value without V1 or V2 accepts nothing. */
enum proxy_result proxy_parse(const uint8_t *data, size_t len, enum proxy_accept accept,
                              struct proxy_header *out, const char **why);

#endif
