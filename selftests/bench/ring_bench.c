// SPDX-License-Identifier: GPL-2.0
/*
 * The consumer's cost per record: a /dev/watch_queue ring against a
 * notification pipe read() loop, both fed the same key events; and records/s
 * through the ring with the injection ioctl as the producer.
 *
 * Prints "BENCH<TAB>table<TAB>row<TAB>column<TAB>value" lines for the harness
 * (make bench).  A benchmark, not a test: it never judges a number.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/keyctl.h>
#include <linux/watch_queue.h>

#include "../wq_util.h"

#define RING_PAGES	16
#define PIPE_NOTES	512
#define KEY_SPEC_SESSION_KEYRING_ID	-3

struct ring {
	int fd;
	struct watch_queue_ring_meta *meta;
	unsigned char *base;
	uint32_t mask;
};

static void ring_open(struct ring *r, int pages)
{
	size_t len = (size_t)pages * sysconf(_SC_PAGESIZE);

	r->fd = syscall(__NR_openat, -100, "/dev/watch_queue", O_RDWR | O_CLOEXEC);
	if (r->fd < 0)
		die("open /dev/watch_queue");
	if (ioctl(r->fd, IOC_WATCH_QUEUE_NR_PAGES, pages) < 0)
		die("IOC_WATCH_QUEUE_NR_PAGES");
	r->base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (r->base == MAP_FAILED)
		die("mmap");
	r->meta = (struct watch_queue_ring_meta *)r->base;
	r->mask = len / 8 - 1;
}

/* The consumer protocol of the uapi header; returns records handled. */
static unsigned int ring_drain(struct ring *r, uint64_t *sum)
{
	uint32_t head = __atomic_load_n(&r->meta->head, __ATOMIC_ACQUIRE);
	uint32_t tail = r->meta->tail;
	unsigned int n = 0;

	while (tail != head) {
		struct watch_notification *w = (void *)(r->base + (tail & r->mask) * 8);
		unsigned int slots = w->info & WATCH_INFO_NR_SLOTS;

		if (w->type != WATCH_TYPE_META) {
			*sum += ((struct key_notification *)w)->key_id;
			n++;
		}
		tail += slots;
		__atomic_store_n(&r->meta->tail, tail, __ATOMIC_RELEASE);
	}
	return n;
}

static unsigned int pipe_drain(int fd, unsigned int want, uint64_t *sum)
{
	unsigned char buf[PIPE_NOTES * 16];
	unsigned int n = 0;

	while (n < want) {
		ssize_t got = read(fd, buf, sizeof(buf));
		ssize_t off = 0;

		if (got <= 0)
			break;
		while (off < got) {
			struct watch_notification *w = (void *)(buf + off);

			if (w->type != WATCH_TYPE_META) {
				*sum += ((struct key_notification *)w)->key_id;
				n++;
			}
			off += w->info & WATCH_INFO_LENGTH;
		}
	}
	return n;
}

static void bench_keys(void)
{
	static const unsigned int batches[] = { 1, 16, 500 };
	struct ring r;
	int pfd[2];
	long key;
	uint64_t sum = 0;

	if (kctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0) < 0)
		die("join session keyring");
	key = syscall(__NR_add_key, "user", "bench", "x", 1, KEY_SPEC_SESSION_KEYRING_ID);
	if (key < 0)
		die("add_key");
	ring_open(&r, RING_PAGES);
	if (pipe2(pfd, O_NOTIFICATION_PIPE | O_NONBLOCK) < 0)
		die("pipe2(O_NOTIFICATION_PIPE)");
	if (ioctl(pfd[0], IOC_WATCH_QUEUE_SET_SIZE, PIPE_NOTES) < 0)
		die("IOC_WATCH_QUEUE_SET_SIZE");
	if (kctl(KEYCTL_WATCH_KEY, key, r.fd, 1, 0) < 0 ||
	    kctl(KEYCTL_WATCH_KEY, key, pfd[0], 2, 0) < 0)
		die("KEYCTL_WATCH_KEY");

	for (unsigned int b = 0; b < sizeof(batches) / sizeof(batches[0]); b++) {
		unsigned int batch = batches[b], rounds = 4000 / batch + 20;
		uint64_t ring_ns = 0, pipe_ns = 0, records = 0;
		char row[32], val[32];

		for (unsigned int i = 0; i < rounds; i++) {
			uint64_t t0, t1, t2;
			unsigned int got_ring, got_pipe;

			for (unsigned int j = 0; j < batch; j++)
				if (kctl(KEYCTL_UPDATE, key, (unsigned long)"y", 1, 0) < 0)
					die("KEYCTL_UPDATE");
			t0 = now_ns();
			got_ring = ring_drain(&r, &sum);
			t1 = now_ns();
			got_pipe = pipe_drain(pfd[0], batch, &sum);
			t2 = now_ns();
			if (got_ring != batch || got_pipe != batch) {
				fprintf(stderr, "ring_bench: batch %u: ring %u pipe %u records\n",
					batch, got_ring, got_pipe);
				exit(1);
			}
			ring_ns += t1 - t0;
			pipe_ns += t2 - t1;
			records += batch;
		}
		snprintf(row, sizeof(row), "batch %u", batch);
		snprintf(val, sizeof(val), "%.0f", (double)ring_ns / records);
		printf("BENCH\tconsumer ns per key record\t%s\tring\t%s\n", row, val);
		snprintf(val, sizeof(val), "%.0f", (double)pipe_ns / records);
		printf("BENCH\tconsumer ns per key record\t%s\tpipe read()\t%s\n", row, val);
		snprintf(val, sizeof(val), "%.1fx", (double)pipe_ns / (ring_ns ? ring_ns : 1));
		printf("BENCH\tconsumer ns per key record\t%s\tpipe/ring\t%s\n", row, val);
	}
	fprintf(stderr, "checksum %llu\n", (unsigned long long)sum);
}

struct inject_arg {
	struct ring *r;
	atomic_bool stop;
	uint64_t delivered;
};

static void *consumer(void *p)
{
	struct inject_arg *a = p;
	uint64_t sum = 0;

	while (!atomic_load(&a->stop))
		a->delivered += ring_drain(a->r, &sum);
	a->delivered += ring_drain(a->r, &sum);
	return NULL;
}

static void bench_inject(void)
{
	static const unsigned int sizes[] = { 2, 8, 63 };

	for (unsigned int s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct { struct watch_notification n; uint64_t pad[62]; } rec = { 0 };
		struct inject_arg a = { 0 };
		struct ring r;
		pthread_t th;
		uint64_t posted = 0, t0, t1;
		uint32_t lost = 0;
		char row[32], val[32];

		ring_open(&r, RING_PAGES);
		a.r = &r;
		rec.n.type = WATCH_TYPE_KEY_NOTIFY;
		rec.n.info = sizes[s];
		if (ioctl(r.fd, IOC_WATCH_QUEUE_INJECT, &rec) < 0) {
			if (errno == ENOTTY) {
				fprintf(stderr, "ring_bench: no IOC_WATCH_QUEUE_INJECT in this kernel\n");
				close(r.fd);
				return;
			}
			die("IOC_WATCH_QUEUE_INJECT");
		}
		posted++;
		pthread_create(&th, NULL, consumer, &a);
		t0 = now_ns();
		do {
			for (int i = 0; i < 1000; i++)
				ioctl(r.fd, IOC_WATCH_QUEUE_INJECT, &rec);
			posted += 1000;
			t1 = now_ns();
		} while (t1 - t0 < 2000000000ull);
		atomic_store(&a.stop, true);
		pthread_join(th, NULL);
		ioctl(r.fd, IOC_WATCH_QUEUE_TAKE_LOSS, &lost);
		snprintf(row, sizeof(row), "%u-slot records", sizes[s]);
		snprintf(val, sizeof(val), "%.0f", a.delivered * 1e9 / (t1 - t0));
		printf("BENCH\tinjection through the ring\t%s\tdelivered/s\t%s\n", row, val);
		snprintf(val, sizeof(val), "%.1f%%", 100.0 * (posted - a.delivered) / posted);
		printf("BENCH\tinjection through the ring\t%s\tdropped\t%s\n", row, val);
		munmap(r.base, (size_t)RING_PAGES * sysconf(_SC_PAGESIZE));
		close(r.fd);
	}
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	bench_keys();
	bench_inject();
	return 0;
}
