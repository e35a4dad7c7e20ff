/*
 * etcd_tls.c — the client's TLS options checked at start: a certificate
 * without its key, TLS files with plain http:// endpoints, or a file libcurl
 * would only refuse at the first request (unreadable, expired, wrong key, not
 * signed by the CA) is an error naming the option and the file.
 */
#include <stdio.h>
#include <string.h>

#include "common/tlsfile.h"
#include "dcs/etcd.h"

static bool set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

/* The first endpoint that is not https://, or NULL. Spaces as etcd.c trims them. */
static const char *first_plain(const char *list, char *buf, size_t len)
{
	const char *p = list;
	while (*p) {
		size_t n = strcspn(p, ",");
		const char *s = p;
		p = p[n] ? p + n + 1 : p + n;
		while (n > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			n--;
		}
		if (n > 0 && strncmp(s, "https://", 8) != 0) {
			snprintf(buf, len, "%.*s", (int)n, s);
			return buf;
		}
	}
	return NULL;
}

int etcd_check_tls(const struct etcd_opts *o, const char *const names[3], struct pgha_err *e)
{
	bool ca = set(o->ca_file), cert = set(o->cert_file), key = set(o->key_file);
	if (cert != key)
		return err_set(e, "%s is set but %s is not\n"
			       "HINT: a client certificate needs its private key, and a key its certificate",
			       cert ? names[1] : names[2], cert ? names[2] : names[1]);
	if (!ca && !cert)
		return 0;
	char ep[256];
	if (o->endpoints != NULL && first_plain(o->endpoints, ep, sizeof(ep)) != NULL)
		return err_set(e, "%s is set but the etcd endpoint \"%s\" is not https://\n"
			       "HINT: TLS files apply to https:// endpoints only; use https:// URLs "
			       "or remove the TLS options", ca ? names[0] : names[1], ep);
	/* Not "signed by ca_file": that CA verifies etcd's server certificate; the
	 * client's may come from another CA (etcd's --trusted-ca-file says which). */
	if (cert && tls_files_check(o->cert_file, o->key_file, NULL, e) != 0)
		return err_wrap(e, "etcd client certificate (%s, %s)", names[1], names[2]);
	if (ca && tls_ca_check("ca_file", o->ca_file, e) != 0)
		return err_wrap(e, "%s", names[0]);
	return 0;
}
