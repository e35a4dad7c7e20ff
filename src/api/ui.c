/*
 * ui.c — the dashboard every agent serves at /ui: one HTML page, its script
 * and style sheet, embedded in the binary at build time (src/api/ui/, through
 * scripts/embed.py), so a machine without internet access shows it. The page
 * polls /cluster, /history and /ui/series; it changes something only through
 * POST /switchover with the API token the operator types in. The charts'
 * points are kept in the API's snapshot (api_source_add_sample), about ten
 * minutes, with no database.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "ui_files.h"

/* Only this origin: no inline script, no frame, nothing from elsewhere. */
#define UI_CSP "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " \
	       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

bool api_ui_file(const char *path, struct http_response *resp)
{
	const char *data = NULL, *type = NULL;
	size_t len = 0;
	if (strcmp(path, "/ui") == 0 || strcmp(path, "/ui/") == 0) {
		data = ui_index_html;
		len = ui_index_html_len;
		type = "text/html; charset=utf-8";
	} else if (strcmp(path, "/ui/app.js") == 0) {
		data = ui_app_js;
		len = ui_app_js_len;
		type = "text/javascript; charset=utf-8";
	} else if (strcmp(path, "/ui/app.css") == 0) {
		data = ui_app_css;
		len = ui_app_css_len;
		type = "text/css; charset=utf-8";
	} else {
		return false;
	}
	resp->status = 200;
	resp->content_type = type;
	resp->csp = UI_CSP;
	sb_append(&resp->body, data, len);
	return true;
}

static void num_or_null(struct strbuf *out, double v)
{
	if (isnan(v))
		sb_puts(out, "null");
	else
		sb_printf(out, "%.0f", v);
}

void api_series_json(const struct api_source *src, struct strbuf *out)
{
	/* Member names are letters, digits, '_', '-' and '.': nothing to escape in JSON. */
	sb_printf(out, "{\"member\":\"%s\",\"etcd\":{\"reachable\":%s,\"endpoints\":", src->status.self.name,
		  src->status.etcd_reachable ? "true" : "false");
	json_t *ep = json_string(src->etcd && src->etcd->endpoints ? src->etcd->endpoints : "");
	char *eps = ep ? json_dumps(ep, JSON_ENCODE_ANY) : NULL;
	sb_puts(out, eps ? eps : "\"\"");
	free(eps);
	json_decref(ep);
	sb_puts(out, ",\"health\":[");
	for (size_t i = 0; i < src->netcd; i++) {
		json_t *u = json_string(src->etcd_health[i]);
		char *us = u ? json_dumps(u, JSON_ENCODE_ANY) : NULL;
		sb_printf(out, "%s{\"url\":%s,\"up\":%s}", i ? "," : "", us ? us : "\"\"", src->etcd_up[i] ? "true" : "false");
		free(us);
		json_decref(u);
	}
	sb_puts(out, "]},\"points\":[");
	for (size_t k = 0; k < src->series_n; k++) {
		const struct api_sample *p = &src->series[(src->series_head + k) % API_SERIES_MAX];
		sb_printf(out, "%s{\"t\":%lld,\"xacts\":", k ? "," : "", (long long)p->t_ms);
		num_or_null(out, p->xacts);
		sb_puts(out, ",\"conns\":");
		num_or_null(out, p->conns);
		sb_puts(out, ",\"proxy_waiting\":");
		num_or_null(out, p->proxy_waiting);
		sb_puts(out, ",\"lag\":{");
		for (int i = 0; i < p->nlag; i++)
			sb_printf(out, "%s\"%s\":%lld", i ? "," : "", p->lag_name[i], (long long)p->lag[i]);
		sb_puts(out, "}}");
	}
	sb_puts(out, "]}");
}
