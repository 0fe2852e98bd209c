/* hl7v2/hl7v2.h: HL7 version 2 messages, as hospital feeds send them.
 *
 * Parsing (parse.c): a message is segments ended by CR, LF or CRLF; MSH-1
 * is the field separator and MSH-2 the encoding characters (component,
 * repetition, escape, subcomponent, and in 2.7+ truncation), read from the
 * message itself, never assumed. Fields hold repetitions, repetitions
 * components, components subcomponents. Escape sequences (\F\ \S\ \T\ \R\
 * \E\ \Xhh..\, and the highlighting and formatting ones, dropped) are
 * decoded when a value is read. Versions 2.3 to 2.8; Z-segments and
 * segments careweave does not use are kept and ignored; a missing optional
 * field reads as absent. Be liberal in what is parsed, strict in what is
 * stored: the mapping decides what a value must look like.
 *
 * Answering (ack.c): the ACK for a message, MSA-1 AA, AE or AR, with an
 * ERR segment per problem named for the sender's interface analyst.
 *
 * The listener (mllp.h) and what a message does to the record (the
 * receiving side) are apart from this file: nothing here does I/O or
 * knows the store. Everything a parse makes lives in the caller's arena. */
#ifndef CW_HL7V2_H
#define CW_HL7V2_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"

/* A message larger than this is not parsed (the listener refuses it). */
#define HL7_MSG_MAX (1u << 20)
/* The most segments, and repetitions of one field, a message may have. */
#define HL7_SEGMENTS_MAX 5000
#define HL7_REPS_MAX 100

struct hl7_msg; /* opaque; in the arena it was parsed into */

/* The separators a message declares in MSH-1 and MSH-2. truncation is
 * '\0' before 2.7 (or when the message declares none). */
struct hl7_delims {
	char field, component, repetition, escape, subcomponent, truncation;
};

/* Parses the n bytes of text into *out. CW_EINVAL, with why in d, when
 * it is not an HL7 v2 message at all: no MSH segment first, no or a
 * repeated separator in MSH-1/MSH-2, more than HL7_SEGMENTS_MAX segments,
 * a field with more than HL7_REPS_MAX repetitions, a NUL byte, a second
 * MSH (batches are not taken). A segment whose name is not three letters
 * or digits is a problem too (named in d, by its position). More than
 * HL7_MSG_MAX bytes: CW_ETOOBIG; the arena full: CW_ENOMEM. Everything
 * else parses. The text is copied into a (the caller's buffer may be
 * reused), and the values hl7_get decodes are allocated in a too. */
enum cw_err hl7_parse(struct arena *a, const char *text, size_t n,
		      struct hl7_msg **out, struct diag *d);

const struct hl7_delims *hl7_delims(const struct hl7_msg *m);

/* Segments, in message order. */
size_t hl7_segment_count(const struct hl7_msg *m);
/* "PID", "ZPI", ...: the i-th segment's name. */
const char *hl7_segment_name(const struct hl7_msg *m, size_t i);
/* The index of the k-th (from 0) segment named name at or after from, or
 * -1 when there is none. */
long hl7_find(const struct hl7_msg *m, const char *name, size_t from, size_t k);

/* The value at segment seg, field (numbered as HL7 numbers them: MSH-1 is
 * the field separator, MSH-2 the encoding characters, MSH-3 the sending
 * application; in other segments 1 is the first field after the name),
 * repetition rep (from 0), component comp and subcomponent sub (from 1;
 * 0 means all of it, the separators kept as they are in the message),
 * decoded (escapes undone), NUL-terminated, in the arena. NULL when it is
 * absent or empty. The HL7 null, "" (two double quotes), reads as
 * HL7_NULL: the sender says the value is to be deleted. */
const char *hl7_get(const struct hl7_msg *m, size_t seg, unsigned field,
		    unsigned rep, unsigned comp, unsigned sub);
extern const char HL7_NULL[];
/* How many repetitions field has at segment seg (0: absent). */
unsigned hl7_reps(const struct hl7_msg *m, size_t seg, unsigned field);
/* The field as the message wrote it (escapes kept, all repetitions),
 * for showing an operator what arrived; empty when absent. */
struct span hl7_raw(const struct hl7_msg *m, size_t seg, unsigned field);

/* The header (MSH) fields every message is answered and recorded by.
 * Any may be NULL but type and control_id, which a parse that succeeds
 * does not promise: hl7_header says what is missing. */
struct hl7_header {
	const char *sending_app;        /* MSH-3.1 */
	const char *sending_facility;   /* MSH-4.1 */
	const char *receiving_app;      /* MSH-5.1 */
	const char *receiving_facility; /* MSH-6.1 */
	const char *datetime;           /* MSH-7.1, as sent (DTM) */
	const char *type;               /* MSH-9.1: "ADT", "ORU" */
	const char *trigger;            /* MSH-9.2: "A01", "R01" */
	const char *structure;          /* MSH-9.3: "ADT_A01", or NULL */
	const char *control_id;         /* MSH-10 */
	const char *processing_id;      /* MSH-11.1: P, T, D */
	const char *version;            /* MSH-12.1: "2.5.1" */
};

/* Fills h from m's MSH. CW_EINVAL with the problem in d when MSH-9.1,
 * MSH-9.2 or MSH-10 is missing (no ACK can say what was accepted), when
 * MSH-12 names a version outside 2.1 to 2.8 (the caller answers AR). */
enum cw_err hl7_header(const struct hl7_msg *m, struct hl7_header *h,
		       struct diag *d);

/* An HL7 DTM ("YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]") as a FHIR
 * dateTime into out: the same precision ("2007-08-18T11:23:00-05:00";
 * only a year, "2007"; a time without a zone gets none, which FHIR
 * allows only for dates, so to the minute or second without a zone it is
 * written with the zone of tz_minutes east of UTC). false when dtm is
 * not a valid DTM (month 13, hour 25, letters...). */
#define HL7_DATETIME_MAX 40
bool hl7_datetime(const char *dtm, int tz_minutes, char out[HL7_DATETIME_MAX]);
/* The same as milliseconds since the epoch (UTC; the start of the period
 * the precision names). false when dtm is not a valid DTM. */
bool hl7_datetime_ms(const char *dtm, int tz_minutes, int64_t *ms);

/* ---- answering --------------------------------------------------------- */

enum hl7_ack_code {
	HL7_AA, /* accepted: done, or done already (a resent message) */
	HL7_AE, /* error: the message was understood, but careweave could not
		   apply it (unknown patient for an update, a required field
		   missing); the sender should fix and resend */
	HL7_AR, /* rejected: careweave does not take this (message type,
		   version, processing id, not HL7, too large) */
};

/* One problem, for an ERR segment. code: HL7 table 0357 (100 segment
 * sequence error, 101 required field missing, 102 data type error, 103
 * table value not found, 200 unsupported message type, 201 unsupported
 * event code, 202 unsupported processing id, 203 unsupported version id,
 * 204 unknown key identifier, 205 duplicate key identifier, 206
 * application record locked, 207 application internal error). segment,
 * seq (from 1), field (0: the segment) say where; text is plain words,
 * never a value from the message (PHI stays out of answers and logs). */
struct hl7_problem {
	const char *segment;
	unsigned seq;
	unsigned field;
	int code;
	bool warning; /* severity W instead of E */
	const char *text;
};

/* The ACK answering m into out (segments ended by CR): MSH with the
 * sending and receiving application and facility swapped, MSH-7 now,
 * MSH-9 "ACK^<trigger>^ACK", MSH-10 a new control id, MSH-11 and MSH-12
 * echoed (the version careweave writes the ACK in is the sender's); MSA
 * with code and MSA-2 the message's control id (and, before 2.5, MSA-3
 * the first problem's text); one ERR per problem (2.5 and later: ERR-2
 * location, ERR-3 code, ERR-4 severity, ERR-8 text; before 2.5: ERR-1).
 * m may be NULL (nothing could be parsed): the answer is then an AR in
 * version 2.5 with delimiters |^~\&, and what could be read of the MSH
 * line from raw (raw, nraw: the bytes received) fills MSA-2, the
 * swapped applications and the trigger when it can. Values written are
 * escaped. CW_ETOOBIG when out's cap is reached. */
enum cw_err hl7_ack(struct arena *a, const struct hl7_msg *m,
		    const char *raw, size_t nraw, enum hl7_ack_code code,
		    const struct hl7_problem *problems, size_t nproblems,
		    struct sbuf *out);

/* Appends s to out escaped with m's delimiters (field, component,
 * repetition, subcomponent, escape characters, and CR/LF as \X0D\ \X0A\). */
enum cw_err hl7_escape(const struct hl7_delims *dl, const char *s, struct sbuf *out);

#endif
