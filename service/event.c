/* A job's event line (cli/events.c writes them: one flat JSON object) as
 * the typed Event message ferryd sends beside it (event.h). */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "service/event.h"

static char *ws(char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The string at p (after its opening quote), unescaped in place and ended
 * with a NUL; *end is past its closing quote. NULL if it is not one. A
 * \u escape outside ASCII becomes '?': the events carry ASCII and paths. */
static char *string(char *p, char **end)
{
	char *s = p, *o = p;

	for (;;) {
		char c = *p++;

		if (!c || (unsigned char)c < 0x20)
			return NULL;
		if (c == '"')
			break;
		if (c != '\\') {
			*o++ = c;
			continue;
		}
		c = *p++;
		switch (c) {
		case '"': case '\\': case '/': *o++ = c; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			int v = 0;

			for (int k = 0; k < 4; k++) {
				int h = hex(p[k]);

				if (h < 0)
					return NULL;
				v = v * 16 + h;
			}
			p += 4;
			*o++ = v > 0 && v < 0x80 ? (char)v : '?';
			break;
		}
		default:
			return NULL;
		}
	}
	*o = '\0';
	*end = p;
	return s;
}

struct value {
	enum { V_STR, V_NUM, V_BOOL, V_NULL } kind;
	char *s;
	double n;
	bool b;
};

static char *value(char *p, struct value *v)
{
	char *end;

	if (*p == '"') {
		v->kind = V_STR;
		v->s = string(p + 1, &end);
		return v->s ? end : NULL;
	}
	if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
		v->kind = V_BOOL;
		v->b = *p == 't';
		return p + (v->b ? 4 : 5);
	}
	if (!strncmp(p, "null", 4)) {
		v->kind = V_NULL;
		return p + 4;
	}
	if (*p != '-' && (*p < '0' || *p > '9'))
		return NULL;
	v->kind = V_NUM;
	v->n = strtod(p, &end);
	return end > p && isfinite(v->n) ? end : NULL;
}

static bool num(const struct value *v, double lo, double hi)
{
	return v->kind == V_NUM && v->n >= lo && v->n <= hi;
}

/* One key's value into ev; a key or a type it does not know is left out. */
static void field(Ferry__Rpc__Event *ev, const char *k, const struct value *v)
{
	static const struct {
		const char *key;
		size_t has, val;
	} dbl[] = {
#define D(f) { #f, offsetof(Ferry__Rpc__Event, has_##f), offsetof(Ferry__Rpc__Event, f) }
		D(mib), D(seconds), D(dirty_mbs), D(copy_mbs), D(predicted_ms), D(downtime_ms),
		D(handover_ms),
#undef D
	};

	for (size_t i = 0; i < sizeof(dbl) / sizeof(dbl[0]); i++)
		if (!strcmp(k, dbl[i].key) && v->kind == V_NUM) {
			*(protobuf_c_boolean *)((char *)ev + dbl[i].has) = 1;
			*(double *)((char *)ev + dbl[i].val) = v->n;
			return;
		}
	if (!strcmp(k, "event") && v->kind == V_STR) {
		ev->kind = v->s;
	} else if (!strcmp(k, "round") && v->kind == V_STR) {
		ev->round_name = v->s;
	} else if (!strcmp(k, "round") && num(v, 0, UINT32_MAX)) {
		ev->has_round = 1;
		ev->round = (uint32_t)v->n;
	} else if (!strcmp(k, "pages") && num(v, 0, 1e18)) {
		ev->has_pages = 1;
		ev->pages = (uint64_t)v->n;
	} else if (!strcmp(k, "bytes") && num(v, 0, 1e18)) {
		ev->has_bytes = 1;
		ev->bytes = (uint64_t)v->n;
	} else if (!strcmp(k, "done") && v->kind == V_BOOL) {
		ev->has_done = 1;
		ev->done = v->b;
	} else if (!strcmp(k, "remote_pid") && num(v, 0, UINT32_MAX)) {
		ev->has_remote_pid = 1;
		ev->remote_pid = (uint32_t)v->n;
	} else if (!strcmp(k, "errno") && num(v, 0, 4095)) {
		ev->has_err = 1;
		ev->err = (int32_t)v->n;
	} else if (!strcmp(k, "error") && v->kind == V_STR) {
		ev->error = v->s;
	} else if (!strcmp(k, "message") && v->kind == V_STR) {
		ev->message = v->s;
	}
}

int event_parse(char *line, Ferry__Rpc__Event *ev)
{
	char *p = ws(line);

	ferry__rpc__event__init(ev);
	ev->kind = NULL;
	if (*p++ != '{')
		return -EBADMSG;
	p = ws(p);
	if (*p == '}')
		p++;
	else
		for (;;) {
			struct value v = { 0 };
			char *k, *end;

			if (*p != '"' || !(k = string(p + 1, &end)))
				return -EBADMSG;
			p = ws(end);
			if (*p++ != ':')
				return -EBADMSG;
			p = value(ws(p), &v);
			if (!p)
				return -EBADMSG;
			field(ev, k, &v);
			p = ws(p);
			if (*p == '}') {
				p++;
				break;
			}
			if (*p++ != ',')
				return -EBADMSG;
			p = ws(p);
		}
	if (*ws(p) || !ev->kind)
		return -EBADMSG;
	return 0;
}
