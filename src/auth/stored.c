/*
 * stored.c — what kind of secret a stored password is (see stored.h).
 */
#include "auth/stored.h"

#include <string.h>

#include "auth/md5.h"
#include "auth/scram.h"

bool pgmd5_is_verifier(const char *s)
{
	if (!s || strncmp(s, "md5", 3) != 0 || strlen(s) != PGMD5_LEN)
		return false;
	return strspn(s + 3, "0123456789abcdef") == PGMD5_LEN - 3;
}

bool scram_is_verifier(const char *s)
{
	return s && strncmp(s, SCRAM_VERIFIER_PREFIX, strlen(SCRAM_VERIFIER_PREFIX)) == 0;
}
