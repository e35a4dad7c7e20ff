#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(struct pgha_err *e, const char *fmt, ...)
{
	if (e == NULL)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int err_wrap(struct pgha_err *e, const char *fmt, ...)
{
	if (e == NULL)
		return -1;
	char prefix[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(prefix, sizeof(prefix) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	size_t plen = strlen(prefix);
	memcpy(prefix + plen, ": ", 3);
	plen += 2;
	size_t cap = sizeof(e->msg);
	size_t old = strnlen(e->msg, cap - 1);
	if (plen + old >= cap)
		old = cap - 1 - plen;   /* keep the start of the old message */
	memmove(e->msg + plen, e->msg, old);
	memcpy(e->msg, prefix, plen);
	e->msg[plen + old] = '\0';
	return -1;
}

void err_clear(struct pgha_err *e)
{
	if (e != NULL)
		e->msg[0] = '\0';
}
