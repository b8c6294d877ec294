// SPDX-License-Identifier: GPL-2.0
/*
 * The cost for a consumer to learn of one mount change with N mounts in the
 * namespace: consuming the watch_mount() record(s) from a /dev/watch_queue
 * ring, against re-reading /proc/self/mountinfo and diffing it with the
 * previous snapshot.  Same VM, same run, same changes.
 *
 * In a private mount namespace, N bind mounts are made under a tmpfs that is
 * watched; then a mount is alternately added and removed there, and each
 * change is learnt both ways.  The mountinfo consumer does a real diff: it
 * parses every line into (mount id, hash of the line), sorts by id and merges
 * with the previous snapshot, and must find exactly the one change.
 *
 * Without /dev/watch_queue (a kernel with mount notifications but no ring)
 * a notification pipe stands in; its column is then "pipe ns".
 *
 * Prints "BENCH<TAB>table<TAB>row<TAB>column<TAB>value" lines for the harness
 * (make bench).  A benchmark, not a test: it never judges a number.
 *
 * <linux/watch_queue.h> pulls in <linux/fcntl.h>, which clashes with glibc's
 * <fcntl.h> and <sys/mount.h>: mount(2) and friends go through syscall(2).
 */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/watch_queue.h>

#include "../wq_util.h"


#define BASE		"/mnt"
#define RING_PAGES	4
#define PIPE_NOTES	256
#define TABLE		"learning of one mount change"

#define MS_BIND_	0x1000ul
#define MS_REC_		0x4000ul
#define MS_PRIVATE_	(1ul << 18)
#define MNT_DETACH_	2

static const struct {
	unsigned int nr_mounts;
	unsigned int reps;
} sizes[] = {
	{ 10, 400 }, { 100, 200 }, { 1000, 40 }, { 10000, 8 },
};

struct queue {
	int fd, wfd;			/* wfd: the pipe's write end, or -1 */
	unsigned char *base;		/* ring mapping, or NULL for a pipe */
	struct watch_queue_ring_meta *meta;
	uint32_t mask;
	size_t len;
};

struct entry {
	uint32_t id;
	uint64_t hash;
};

struct snapshot {
	struct entry *v;
	size_t nr, cap;
};

static char *text;
static size_t text_cap;

/* --- the queue ------------------------------------------------------------ */

static bool queue_open(struct queue *q)
{
	memset(q, 0, sizeof(*q));
	q->wfd = -1;
	q->fd = syscall(__NR_openat, AT_FDCWD, "/dev/watch_queue", O_RDWR | O_CLOEXEC);
	if (q->fd >= 0) {
		q->len = (size_t)RING_PAGES * sysconf(_SC_PAGESIZE);
		if (ioctl(q->fd, IOC_WATCH_QUEUE_NR_PAGES, RING_PAGES) < 0)
			die("IOC_WATCH_QUEUE_NR_PAGES");
		q->base = mmap(NULL, q->len, PROT_READ | PROT_WRITE, MAP_SHARED, q->fd, 0);
		if (q->base == MAP_FAILED)
			die("mmap");
		q->meta = (struct watch_queue_ring_meta *)q->base;
		q->mask = q->len / 8 - 1;
		return true;
	}
	if (errno != ENOENT)
		die("open /dev/watch_queue");
	{
		int pfd[2];

		if (pipe2(pfd, O_NOTIFICATION_PIPE | O_NONBLOCK | O_CLOEXEC) < 0)
			die("pipe2(O_NOTIFICATION_PIPE)");
		if (ioctl(pfd[0], IOC_WATCH_QUEUE_SET_SIZE, PIPE_NOTES) < 0)
			die("IOC_WATCH_QUEUE_SET_SIZE");
		q->fd = pfd[0];
		q->wfd = pfd[1];
	}
	return false;
}

static void queue_close(struct queue *q)
{
	if (q->base)
		munmap(q->base, q->len);
	close(q->fd);
	if (q->wfd >= 0)
		close(q->wfd);
}

/*
 * Consume every record: the ring's consumer protocol, or a read() loop.
 * Returns the mount records seen; *aux collects their auxiliary mount IDs so
 * that the work cannot be optimised away.
 */
static unsigned int queue_drain(struct queue *q, uint64_t *aux)
{
	unsigned int n = 0;

	if (q->base) {
		uint32_t head = __atomic_load_n(&q->meta->head, __ATOMIC_ACQUIRE);
		uint32_t tail = q->meta->tail;

		while (tail != head) {
			struct watch_notification *w = (void *)(q->base + (tail & q->mask) * 8);

			if (w->type == WATCH_TYPE_MOUNT_NOTIFY) {
				*aux += ((struct mount_notification *)w)->auxiliary_mount;
				n++;
			}
			tail += w->info & WATCH_INFO_NR_SLOTS;
			__atomic_store_n(&q->meta->tail, tail, __ATOMIC_RELEASE);
		}
		return n;
	}
	for (;;) {
		unsigned char buf[PIPE_NOTES * sizeof(struct mount_notification)];
		ssize_t got = read(q->fd, buf, sizeof(buf)), off = 0;

		if (got <= 0)
			return n;
		while (off < got) {
			struct watch_notification *w = (void *)(buf + off);

			if (w->type == WATCH_TYPE_MOUNT_NOTIFY) {
				*aux += ((struct mount_notification *)w)->auxiliary_mount;
				n++;
			}
			off += w->info & WATCH_INFO_LENGTH;
		}
	}
}

/* --- the mountinfo consumer ------------------------------------------------ */

static size_t read_mountinfo(void)
{
	int fd = syscall(__NR_openat, AT_FDCWD, "/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	ssize_t got;

	if (fd < 0)
		die("open /proc/self/mountinfo");
	for (;;) {
		if (text_cap - len < 65536) {
			text_cap = text_cap ? text_cap * 2 : 1 << 20;
			text = realloc(text, text_cap);
			if (!text)
				die("realloc");
		}
		got = read(fd, text + len, text_cap - len);
		if (got < 0)
			die("read /proc/self/mountinfo");
		if (got == 0)
			break;
		len += got;
	}
	close(fd);
	return len;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

/* Parse every line into (mount id, FNV-1a hash of the line), sorted by id. */
static void parse_mountinfo(struct snapshot *s, size_t len)
{
	const char *p = text, *end = text + len;

	s->nr = 0;
	while (p < end) {
		uint64_t hash = 0xcbf29ce484222325ull;
		uint32_t id = 0;
		const char *q = p;

		while (q < end && *q >= '0' && *q <= '9')
			id = id * 10 + (*q++ - '0');
		for (q = p; q < end && *q != '\n'; q++)
			hash = (hash ^ (unsigned char)*q) * 0x100000001b3ull;
		if (s->nr == s->cap) {
			s->cap = s->cap ? s->cap * 2 : 1024;
			s->v = realloc(s->v, s->cap * sizeof(*s->v));
			if (!s->v)
				die("realloc");
		}
		s->v[s->nr].id = id;
		s->v[s->nr].hash = hash;
		s->nr++;
		p = q + 1;
	}
	qsort(s->v, s->nr, sizeof(*s->v), entry_cmp);
}

/* Merge two sorted snapshots: mounts added, removed or whose line changed. */
static unsigned int diff_snapshots(const struct snapshot *a, const struct snapshot *b,
				   uint64_t *aux)
{
	size_t i = 0, j = 0;
	unsigned int changes = 0;

	while (i < a->nr || j < b->nr) {
		if (j == b->nr || (i < a->nr && a->v[i].id < b->v[j].id)) {
			*aux += a->v[i++].id;		/* removed */
			changes++;
		} else if (i == a->nr || b->v[j].id < a->v[i].id) {
			*aux += b->v[j++].id;		/* added */
			changes++;
		} else {
			if (a->v[i].hash != b->v[j].hash) {
				*aux += b->v[j].id;	/* changed */
				changes++;
			}
			i++;
			j++;
		}
	}
	return changes;
}

/* --- the benchmark ---------------------------------------------------------- */

static int u64_cmp(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return (*x > *y) - (*x < *y);
}

static uint64_t median(uint64_t *v, unsigned int n)
{
	qsort(v, n, sizeof(*v), u64_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void bench_size(unsigned int nr_mounts, unsigned int reps)
{
	struct snapshot snap[2] = { { 0 } };
	char dir[64], path[96], toggle[96], row[32], val[32];
	uint64_t *ring_ns, *info_ns, aux = 0, t0;
	struct queue q;
	bool ring;
	int cur = 0;

	ring_ns = calloc(reps, sizeof(*ring_ns));
	info_ns = calloc(reps, sizeof(*info_ns));
	if (!ring_ns || !info_ns)
		die("calloc");

	/* The tree: BASE/nN is a tmpfs with N bind mounts of its "src" below it. */
	snprintf(dir, sizeof(dir), BASE "/n%u", nr_mounts);
	xmkdir(dir);
	xmount("mount_bench", dir, "tmpfs", 0);
	snprintf(path, sizeof(path), "%s/src", dir);
	xmkdir(path);
	t0 = now_ns();
	for (unsigned int i = 0; i < nr_mounts; i++) {
		char target[96];

		snprintf(target, sizeof(target), "%s/m%u", dir, i);
		xmkdir(target);
		xmount(path, target, NULL, MS_BIND_);
	}
	fprintf(stderr, "mount_bench: %u bind mounts in %.1f s\n", nr_mounts,
		(now_ns() - t0) / 1e9);
	snprintf(toggle, sizeof(toggle), "%s/x", dir);
	xmkdir(toggle);

	ring = queue_open(&q);
	if (watch_mount(AT_FDCWD, dir, 0, q.fd, 1) < 0)
		die("watch_mount");
	parse_mountinfo(&snap[cur], read_mountinfo());

	for (unsigned int r = 0; r < reps; r++) {
		unsigned int got, changes;
		uint64_t t1, t2;

		/* One change: a mount appears at x, or goes away again. */
		if (r % 2 == 0)
			xmount(path, toggle, NULL, MS_BIND_);
		else if (syscall(__NR_umount2, toggle, 0) < 0)
			die("umount2");

		t0 = now_ns();
		got = queue_drain(&q, &aux);
		t1 = now_ns();
		parse_mountinfo(&snap[!cur], read_mountinfo());
		changes = diff_snapshots(&snap[cur], &snap[!cur], &aux);
		t2 = now_ns();
		cur = !cur;
		if (got != 1 || changes != 1) {
			fprintf(stderr, "mount_bench: N=%u rep %u: %u records, %u mountinfo changes\n",
				nr_mounts, r, got, changes);
			exit(1);
		}
		ring_ns[r] = t1 - t0;
		info_ns[r] = t2 - t1;
	}

	snprintf(row, sizeof(row), "N=%u", nr_mounts);
	{
		uint64_t a = median(ring_ns, reps), b = median(info_ns, reps);

		snprintf(val, sizeof(val), "%llu", (unsigned long long)a);
		printf("BENCH\t" TABLE "\t%s\t%s\t%s\n", row, ring ? "ring ns" : "pipe ns", val);
		snprintf(val, sizeof(val), "%llu", (unsigned long long)b);
		printf("BENCH\t" TABLE "\t%s\tmountinfo ns\t%s\n", row, val);
		snprintf(val, sizeof(val), "%.0fx", (double)b / (a ? a : 1));
		printf("BENCH\t" TABLE "\t%s\tratio\t%s\n", row, val);
		snprintf(val, sizeof(val), "%zu", snap[cur].nr);
		printf("BENCH\t" TABLE "\t%s\tmountinfo lines\t%s\n", row, val);
	}

	/* Close the queue first, so that the teardown posts nothing. */
	queue_close(&q);
	if (syscall(__NR_umount2, dir, MNT_DETACH_) < 0)
		die("umount2");
	free(snap[0].v);
	free(snap[1].v);
	free(ring_ns);
	free(info_ns);
	fprintf(stderr, "mount_bench: N=%u done, checksum %llu\n", nr_mounts,
		(unsigned long long)aux);
}

int main(int argc, char **argv)
{
	unsigned int max = argc > 1 ? strtoul(argv[1], NULL, 0) : 10000;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (unshare(CLONE_NEWNS) < 0)
		die("unshare(CLONE_NEWNS)");
	if (syscall(__NR_mount, NULL, "/", NULL, MS_REC_ | MS_PRIVATE_, NULL) < 0)
		die("make / private");
	xmount("mount_bench", BASE, "tmpfs", 0);
	if (watch_mount(AT_FDCWD, BASE, 0, -1, 1) < 0 && errno == ENOSYS) {
		fprintf(stderr, "mount_bench: no watch_mount() in this kernel\n");
		return 0;
	}
	for (unsigned int i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		if (sizes[i].nr_mounts <= max)
			bench_size(sizes[i].nr_mounts, sizes[i].reps);
	return 0;
}
