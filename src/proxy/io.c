/*
 * io.c — byte buffers, non-blocking socket reads and writes, epoll registrations, intrusive lists.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/io.h"

#include "common/log.h"
#include "common/util.h"
#include "proxy/objects.h"

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

size_t pbuf_shrink(struct pbuf *b)
{
	size_t n = pbuf_len(b), was = b->cap;
	if (b->cap <= PBUF_KEEP || n > PBUF_KEEP / 2)
		return 0;
	if (n == 0) {
		pbuf_free(b);
		return was;
	}
	pbuf_compact(b);
	b->data = xrealloc(b->data, PBUF_KEEP);
	b->cap = PBUF_KEEP;
	return was - PBUF_KEEP;
}

size_t sb_shrink(struct strbuf *sb, size_t *off)
{
	size_t was = sb->cap;
	if (sb->cap <= PBUF_KEEP || *off < sb->len)
		return 0;
	sb_free(sb);
	*off = 0;
	return was;
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
		size_t room = b->cap - b->end;
		ssize_t n = recv(fd, b->data + b->end, room, 0);
		if (n > 0) {
			b->end += (size_t)n;
			b->drained = (size_t)n < room;
			return n;
		}
		if (n == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			b->drained = true;
			return -2;
		}
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

void proxy_watch(struct proxy *px, struct fdtag *t, uint32_t events)
{
	if (t->registered && t->events == events)
		return;
	struct epoll_event ev = {.events = events, .data.ptr = t};
	if (epoll_ctl(px->epfd, t->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, t->fd, &ev) != 0)
		log_warn("epoll_ctl(fd %d): %s", t->fd, strerror(errno));
	t->registered = true;
	t->events = events;
}

void proxy_unwatch(struct proxy *px, struct fdtag *t)
{
	if (t->registered)
		epoll_ctl(px->epfd, EPOLL_CTL_DEL, t->fd, NULL);
	t->registered = false;
	t->events = 0;
	/*
	 * It is going away (closed, then freed): events for it later in the batch
	 * being handled must not reach it (one client's end can close its server).
	 */
	for (int i = px->ev_next; i < px->ev_count; i++)
		if (px->evs[i].data.ptr == t)
			px->evs[i].data.ptr = NULL;
}
