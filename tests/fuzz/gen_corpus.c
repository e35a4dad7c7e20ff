/*
 * gen_corpus.c — writes the seed inputs of fuzz_pgproto into a directory
 * (`make fuzz-corpus` regenerates tests/fuzz/corpus/pgproto/seed-*).
 * Each seed is a selector byte (0 client side, 1 server side) followed by
 * valid messages made with the pgproto builders.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "pgproto/pgproto.h"

static const char *dir;

static void save(const char *name, char side, const struct strbuf *sb)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fputc(side, f) == EOF || fwrite(sb->data, 1, sb->len, f) != sb->len ||
	    fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	struct strbuf sb = STRBUF_INIT;

	/* startup packets */
	pgp_build_ssl_request(&sb);
	save("ssl", 0, &sb);
	sb_reset(&sb);
	const uint8_t key[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	pgp_build_cancel_request(&sb, 4242, key, 4);
	save("cancel", 0, &sb);
	sb_reset(&sb);
	const struct pgp_param params[] = {
		{"user", "alice"}, {"database", "shop"}, {"application_name", "psql"},
		{"options", "-c geqo=off"}, {"replication", "false"},
		{"client_encoding", "UTF8"}, {"DateStyle", "ISO, MDY"},
	};
	pgp_build_startup(&sb, 0, params, 7);
	save("startup30", 0, &sb);
	sb_reset(&sb);
	const struct pgp_param params32[] = {{"user", "bob"}, {"_pq_.x", "1"}};
	pgp_build_startup(&sb, 2, params32, 2);
	save("startup32", 0, &sb);
	sb_reset(&sb);

	/* client: simple and extended query, auth responses, copy */
	pgp_build_query(&sb, "SELECT 1");
	const uint32_t oids[2] = {23, 25};
	pgp_build_parse(&sb, "s1", "SELECT $1, $2", oids, 2);
	const int16_t pf[2] = {0, 1}, rf[1] = {0};
	const struct pgp_value vals[2] = {{(const uint8_t *)"42", 2}, {NULL, -1}};
	pgp_build_bind(&sb, "", "s1", pf, 2, vals, 2, rf, 1);
	pgp_build_describe(&sb, 'P', "");
	pgp_build_execute(&sb, "", 0);
	pgp_build_close(&sb, 'S', "s1");
	pgp_build_flush(&sb);
	pgp_build_sync(&sb);
	pgp_build_terminate(&sb);
	save("client-queries", 0, &sb);
	sb_reset(&sb);
	pgp_build_password(&sb, "md5f00ba4");
	pgp_build_sasl_initial_response(&sb, "SCRAM-SHA-256", "n,,n=,r=abcdef", 14);
	pgp_build_sasl_initial_response(&sb, "SCRAM-SHA-256", NULL, 0);
	pgp_build_sasl_response(&sb, "c=biws,r=abcdef,p=xyz=", 22);
	save("client-auth", 0, &sb);
	sb_reset(&sb);

	/* server: authentication, startup chatter, results, errors */
	pgp_build_auth_ok(&sb);
	pgp_build_auth_cleartext(&sb);
	const uint8_t salt[4] = {0xde, 0xad, 0xbe, 0xef};
	pgp_build_auth_md5(&sb, salt);
	const char *mechs[2] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"};
	pgp_build_auth_sasl(&sb, mechs, 2);
	pgp_build_auth_sasl_continue(&sb, "r=abc,s=c2FsdA==,i=4096", 23);
	pgp_build_auth_sasl_final(&sb, "v=c2lnbmF0dXJl", 14);
	save("server-auth", 1, &sb);
	sb_reset(&sb);
	pgp_build_parameter_status(&sb, "server_version", "15.4");
	pgp_build_backend_key_data(&sb, 4242, key, 4);
	pgp_build_ready_for_query(&sb, 'I');
	const char *opts[1] = {"_pq_.x"};
	pgp_build_negotiate_protocol_version(&sb, 0, opts, 1);
	save("server-startup", 1, &sb);
	sb_reset(&sb);
	const char *names[2] = {"name", "state"};
	const char *row[2] = {"node1", NULL};
	const uint32_t ptypes[1] = {23};
	pgp_build_parameter_description(&sb, ptypes, 1);
	pgp_build_row_description(&sb, names, 2);
	pgp_build_data_row(&sb, row, 2);
	pgp_build_command_complete(&sb, "SELECT 1");
	pgp_build_empty_query_response(&sb);
	pgp_build_ready_for_query(&sb, 'T');
	save("server-results", 1, &sb);
	sb_reset(&sb);
	pgp_build_error(&sb, "ERROR", "42P01", "relation \"x\" does not exist", NULL,
			"Create it first.");
	pgp_build_notice(&sb, "WARNING", "01000", "careful", "some detail", NULL);
	pgp_build_ready_for_query(&sb, 'E');
	save("server-errors", 1, &sb);
	sb_free(&sb);
	return 0;
}
