/*
 * etcd_auth.c — turning authentication on in an etcd that pgha runs itself
 * (`pgha up`): whoever can write the cluster's keys controls the cluster
 * (the leader key, dynamic PostgreSQL parameters), so a local cluster should
 * not leave them open to every local process.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "dcs/etcd.h"

/* POST a JSON object, wiping its text afterwards (it may hold a password). "already exists" is fine. */
static int post(struct etcd_client *c, const char *path, json_t *o, struct pgha_err *e)
{
	char *body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (body == NULL)
		return err_set(e, "etcd %s: cannot encode the request", path);
	int rc = etcd_post(c, path, body, e);
	explicit_bzero(body, strlen(body));
	free(body);
	if (rc != ETCD_OK && strstr(e->msg, "already exists") != NULL)
		return ETCD_OK;
	return rc;
}

static int add_user(struct etcd_client *c, const char *user, const char *password, struct pgha_err *e)
{
	json_t *o = json_pack("{s:s, s:s}", "name", user, "password", password);
	if (o == NULL)
		return err_set(e, "etcd: cannot encode user %s", user);
	if (post(c, "/v3/auth/user/add", o, e) != ETCD_OK)
		return err_wrap(e, "adding etcd user %s", user);
	o = json_pack("{s:s, s:s}", "user", user, "role", strcmp(user, "root") == 0 ? "root" : user);
	if (post(c, "/v3/auth/user/grant", o, e) != ETCD_OK)
		return err_wrap(e, "granting etcd user %s its role", user);
	return 0;
}

int etcd_auth_setup(struct etcd_client *c, const char *root_password, const char *user,
		    const char *password, const char *prefix, struct pgha_err *e)
{
	/* The role: read and write [prefix, prefix with its last byte + 1). */
	size_t n = strlen(prefix);
	if (n == 0 || (unsigned char)prefix[n - 1] == 0xff)
		return err_set(e, "etcd auth: prefix \"%s\" cannot bound a key range", prefix);
	char *end = xstrdup(prefix);
	end[n - 1] = (char)(end[n - 1] + 1);
	char *key64 = base64_encode(prefix, n), *end64 = base64_encode(end, n);
	free(end);
	json_t *role = json_pack("{s:s}", "name", user);
	json_t *grant = json_pack("{s:s, s:{s:s, s:s, s:s}}", "name", user, "perm", "permType", "READWRITE",
				  "key", key64, "range_end", end64);
	free(key64);
	free(end64);
	int rc = -1;
	if (role == NULL || grant == NULL) {
		json_decref(role);
		json_decref(grant);
		return err_set(e, "etcd auth: cannot encode the role");
	}
	if (post(c, "/v3/auth/role/add", role, e) != ETCD_OK) {
		json_decref(grant);
		return err_wrap(e, "adding etcd role %s", user);
	}
	if (post(c, "/v3/auth/role/grant", grant, e) != ETCD_OK)
		return err_wrap(e, "granting etcd role %s the keys under %s", user, prefix);
	if (add_user(c, "root", root_password, e) != 0 || add_user(c, user, password, e) != 0)
		return -1;
	json_t *on = json_object();
	rc = post(c, "/v3/auth/enable", on, e);
	if (rc != ETCD_OK)
		return err_wrap(e, "enabling etcd authentication");
	return 0;
}
