/*
 * io.h — the proxy's byte buffers, non-blocking socket reads and writes,
 * epoll registrations and intrusive lists (io.c). Event-loop thread only.
 */
#ifndef PGHA_PROXY_IO_H
#define PGHA_PROXY_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/strbuf.h"

struct proxy;

/* Growable byte buffer with a consumed prefix. */
struct pbuf {
	uint8_t *data;
	size_t cap;
	size_t start;   /* first unconsumed byte */
	size_t end;     /* one past the last byte */
	/*
	 * The last read got less than it asked for (or EAGAIN): the socket was
	 * drained then. The relay does not read again in the same pass (a read
	 * that would only say EAGAIN); level-triggered epoll reports what comes
	 * next. Cleared before a pass that an EPOLLIN event started.
	 */
	bool drained;
};

/* Buffers that grew past this for a large message shrink back once it is through. */
#define PBUF_KEEP (64u * 1024)
void pbuf_reserve(struct pbuf *b, size_t extra);
/* Give back what a buffer grew past PBUF_KEEP (all of it when empty); returns bytes freed. */
size_t pbuf_shrink(struct pbuf *b);
/* Free sb if it grew past PBUF_KEEP and all of it was sent (*off == len, then 0); returns bytes freed. */
size_t sb_shrink(struct strbuf *sb, size_t *off);
void pbuf_free(struct pbuf *b);
size_t pbuf_len(const struct pbuf *b);
void pbuf_compact(struct pbuf *b);
/* Read what the socket has (up to a limit). Returns bytes read, 0 on EOF, -1 on error, -2 EAGAIN. */
ssize_t pbuf_read(struct pbuf *b, int fd);
/* Send bytes [start, end) of b to fd, consuming what was sent. 1 all sent, 0 partial, -1 error. */
int pbuf_send(struct pbuf *b, int fd);
/* Send sb from *off; 1 all sent (sb reset), 0 partial, -1 error. */
int strbuf_send(struct strbuf *sb, size_t *off, int fd);

/* A linked-list node embedded in clients and servers. */
struct link {
	struct link *prev, *next;
};

void link_init(struct link *l);
void link_add_tail(struct link *head, struct link *n);
void link_del(struct link *n);
bool link_empty(const struct link *head);
#define link_entry(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

enum fd_kind { FD_LISTEN_RW, FD_LISTEN_RO, FD_CLIENT, FD_SERVER, FD_ROUTE, FD_SIGNAL, FD_AUTHQ };

/* What epoll hands back: the first member of every registered object. */
struct fdtag {
	enum fd_kind kind;
	int fd;
	uint32_t events;       /* currently registered */
	bool registered;
};

/* Watch t for events (0: none, still registered), in the proxy's epoll set. */
void proxy_watch(struct proxy *px, struct fdtag *t, uint32_t events);
/* Stop watching t before it is closed: events for it later in the batch being handled are dropped. */
void proxy_unwatch(struct proxy *px, struct fdtag *t);

#endif
