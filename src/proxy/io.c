/*
 * io.c — byte buffers, non-blocking socket reads and writes, the incremental
 * message-header scanner and intrusive lists.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/proxy_int.h"

#define READ_CHUNK 16384

void pbuf_reserve(struct pbuf *b, size_t extra)
{
	if (b->end + extra <= b->cap)
		return;
	pbuf_compact(b);
	if (b->end + extra <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->end + extra)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void pbuf_free(struct pbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

size_t pbuf_len(const struct pbuf *b)
{
	return b->end - b->start;
}

void pbuf_compact(struct pbuf *b)
{
	if (b->start == 0)
		return;
	size_t n = b->end - b->start;
	if (n > 0)
		memmove(b->data, b->data + b->start, n);
	b->start = 0;
	b->end = n;
}

ssize_t pbuf_read(struct pbuf *b, int fd)
{
	if (b->start == b->end)
		b->start = b->end = 0;
	pbuf_reserve(b, READ_CHUNK);
	for (;;) {
		ssize_t n = recv(fd, b->data + b->end, b->cap - b->end, 0);
		if (n > 0) {
			b->end += (size_t)n;
			return n;
		}
		if (n == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -2;
		return -1;
	}
}

int pbuf_send(struct pbuf *b, int fd)
{
	while (b->start < b->end) {
		ssize_t n = send(fd, b->data + b->start, b->end - b->start, MSG_NOSIGNAL);
		if (n > 0) {
			b->start += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
	b->start = b->end = 0;
	return 1;
}

int strbuf_send(struct strbuf *sb, size_t *off, int fd)
{
	while (*off < sb->len) {
		ssize_t n = send(fd, sb->data + *off, sb->len - *off, MSG_NOSIGNAL);
		if (n > 0) {
			*off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
	sb_reset(sb);
	*off = 0;
	return 1;
}

size_t msgscan_feed(struct msgscan *s, const uint8_t *data, size_t from, size_t to, msgscan_cb cb,
		    void *arg)
{
	size_t i = from;
	while (i < to) {
		if (s->remaining > 0) {
			if (s->want_status) {
				/* First body byte of a ReadyForQuery: report it now. */
				s->want_status = false;
				char status = (char)data[i];
				s->remaining--;
				i++;
				if (!cb(arg, 'Z', 5, -1, status))
					return i;
				continue;
			}
			size_t take = to - i < s->remaining ? to - i : s->remaining;
			s->remaining -= (uint32_t)take;
			i += take;
			continue;
		}
		size_t hdr_start = i;
		while (s->hdr_len < 5 && i < to)
			s->hdr[s->hdr_len++] = data[i++];
		if (s->hdr_len < 5)
			break;
		s->hdr_len = 0;
		s->type = (char)s->hdr[0];
		uint32_t len = ((uint32_t)s->hdr[1] << 24) | ((uint32_t)s->hdr[2] << 16) |
			       ((uint32_t)s->hdr[3] << 8) | s->hdr[4];
		/* A length below 4 is a protocol violation; the caller checks with cb. */
		s->remaining = len >= 4 ? len - 4 : 0;
		long off = i - hdr_start == 5 ? (long)hdr_start : -1;
		if (s->type == 'Z' && s->remaining > 0) {
			s->want_status = true;
			continue;
		}
		if (!cb(arg, s->type, len, off, 0))
			return i;
	}
	return to;
}

bool msgscan_at_boundary(const struct msgscan *s)
{
	return s->hdr_len == 0 && s->remaining == 0 && !s->want_status;
}

void link_init(struct link *l)
{
	l->prev = l->next = l;
}

void link_add_tail(struct link *head, struct link *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

void link_del(struct link *n)
{
	if (n->next == NULL || n->next == n)
		return;
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

bool link_empty(const struct link *head)
{
	return head->next == head;
}
