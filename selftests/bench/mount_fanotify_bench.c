// SPDX-License-Identifier: GPL-2.0
/*
 * watch_mount() through a ring against fanotify's mount events, in one run.
 *
 * 1. The consumer's full cost to learn one mount change (which mount, what
 *    happened to it, its attributes and parent after it) with N = 10, 100,
 *    1,000 and 10,000 mounts in the namespace, three ways:
 *     - ring:       one struct mount_notification from a /dev/watch_queue
 *                   ring, which carries all of that (no statmount() needed);
 *     - fanotify:   read() of a FAN_MNT_ATTACH/DETACH event (the mount ID)
 *                   plus statmount(STATMOUNT_MNT_BASIC) for the rest;
 *     - mountinfo:  re-read /proc/self/mountinfo and diff it with the last
 *                   snapshot.
 *    The ring's cost grows with N although the consumer's work (a few loads
 *    and one store, no system call) does not.  What grows is the cost of the
 *    first loads after a system call that worked on a bigger mount table
 *    (emulated caches and TLB under TCG).  To show it, right after the same
 *    operation an empty ring that watches nothing is looked at first ("ring,
 *    empty look": what any consumer pays to find out whether anything
 *    happened), and the real ring is drained after it ("ring after the
 *    look": what reading the record itself costs).
 *
 * 2. A burst of 10,000 bind mounts with both consumers asleep, then drained:
 *    records per second delivered, consumer CPU per record, and what each
 *    says when its queue overflows: the ring a loss record with the exact
 *    count of what it dropped, fanotify FAN_Q_OVERFLOW, after which the only
 *    way to learn the state is a rescan (its cost is reported).
 *
 * Prints "BENCH<TAB>table<TAB>row<TAB>column<TAB>value" lines for the harness
 * (make bench).  A benchmark, not a test: it never judges a number.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

/* <linux/fanotify.h> (through <sys/fanotify.h>) wants this from the libc. */
typedef struct {
	int	val[2];
} __kernel_fsid_t;
#define __kernel_fsid_t __kernel_fsid_t

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/mount.h>
#include <linux/watch_queue.h>

#define BASE		"/mnt"
#define T_LEARN		"learning of one mount change (ns, median)"
#define T_BURST		"burst of 10,000 bind mounts"
#define BURST		10000
#define RING_PAGES	128	/* room for the whole burst: 5 slots a record */
#define SMALL_PAGES	1	/* a ring that overflows */
#define FAN_SMALL_QUEUE	1000	/* a fanotify queue that overflows */

static const struct {
	unsigned int nr_mounts;
	unsigned int reps;
} sizes[] = {
	{ 10, 400 }, { 100, 200 }, { 1000, 100 }, { 10000, 40 },
};

struct ring {
	int fd;
	unsigned char *base;
	struct watch_queue_ring_meta *meta;
	uint32_t mask;
	size_t len;
};

struct snapshot {
	struct { uint32_t id; uint64_t hash; } *v;
	size_t nr, cap;
};

static char *text;
static size_t text_cap;
static uint64_t sink;

static void die(const char *what)
{
	fprintf(stderr, "mount_fanotify_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void xmount(const char *src, const char *dst, const char *type,
		   unsigned long flags)
{
	if (mount(src, dst, type, flags, NULL) < 0)
		die(dst);
}

/* Change i of a series: bind @src on @toggle (even i), or unmount it (odd i). */
static void toggle_mount(const char *src, const char *toggle, unsigned int i)
{
	if (i % 2 == 0)
		xmount(src, toggle, NULL, MS_BIND);
	else if (umount(toggle) < 0)
		die("umount");
}

static void xmkdir(const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die(path);
}

static void ring_open(struct ring *r, unsigned int pages, const char *watch)
{
	r->fd = open("/dev/watch_queue", O_RDWR | O_CLOEXEC);
	if (r->fd < 0)
		die("open /dev/watch_queue");
	if (ioctl(r->fd, IOC_WATCH_QUEUE_NR_PAGES, pages) < 0)
		die("IOC_WATCH_QUEUE_NR_PAGES");
	r->len = (size_t)pages * sysconf(_SC_PAGESIZE);
	r->base = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (r->base == MAP_FAILED)
		die("mmap");
	r->meta = (struct watch_queue_ring_meta *)r->base;
	r->mask = r->len / 8 - 1;
	if (watch && syscall(__NR_watch_mount, AT_FDCWD, watch, 0, r->fd, 1) < 0)
		die("watch_mount");
}

static void ring_close(struct ring *r)
{
	munmap(r->base, r->len);
	close(r->fd);
}

/*
 * Consume every record: mount records counted (and their content used), loss
 * records' counts added to *lost.
 */
static unsigned int ring_drain(struct ring *r, uint64_t *lost)
{
	uint32_t tail = r->meta->tail, head;
	unsigned int n = 0;

	for (;;) {
		head = __atomic_load_n(&r->meta->head, __ATOMIC_ACQUIRE);
		if (head == tail)
			break;
		while (tail != head) {
			const struct watch_notification *w =
				(const void *)(r->base + (tail & r->mask) * 8);

			if (w->type == WATCH_TYPE_MOUNT_NOTIFY) {
				const struct mount_notification *m = (const void *)w;

				sink += m->auxiliary_mount + m->triggered_on +
					m->mnt_attr + w->subtype;
				n++;
			} else if (w->type == WATCH_TYPE_META &&
				   w->subtype == WATCH_META_LOSS_NOTIFICATION) {
				*lost += ((const struct watch_notification_loss *)w)->nr_lost;
			}
			tail += w->info & WATCH_INFO_NR_SLOTS;
		}
		__atomic_store_n(&r->meta->tail, tail, __ATOMIC_RELEASE);
	}
	return n;
}

static int fan_open(unsigned int queue)
{
	int fd, ns;

	fd = fanotify_init(FAN_REPORT_MNT | FAN_NONBLOCK |
			   (queue ? 0 : FAN_UNLIMITED_QUEUE), 0);
	if (fd < 0)
		die("fanotify_init(FAN_REPORT_MNT)");
	ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		die("/proc/self/ns/mnt");
	if (fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_MNTNS,
			  FAN_MNT_ATTACH | FAN_MNT_DETACH, ns, NULL) < 0)
		die("fanotify_mark(FAN_MARK_MNTNS)");
	close(ns);
	return fd;
}

/* statmount() the basics of a mount: what the ring record carries. */
static void stat_mount(uint64_t id)
{
	struct mnt_id_req req = {
		.size = MNT_ID_REQ_SIZE_VER0,
		.mnt_id = id,
		.param = STATMOUNT_MNT_BASIC,
	};
	struct statmount sm;

	/* A detached mount is gone: ENOENT is the answer for a DETACH. */
	if (syscall(__NR_statmount, &req, &sm, sizeof(sm), 0) == 0)
		sink += sm.mnt_attr + sm.mnt_parent_id;
}

/*
 * Consume every fanotify event, with a statmount() for each.  Returns the
 * events; *overflow is set if the queue overflowed.
 */
static unsigned int fan_drain(int fd, bool *overflow)
{
	unsigned char buf[64 * 1024];
	unsigned int n = 0;
	ssize_t len;

	while ((len = read(fd, buf, sizeof(buf))) > 0) {
		struct fanotify_event_metadata *meta = (void *)buf;

		for (; FAN_EVENT_OK(meta, len); meta = FAN_EVENT_NEXT(meta, len)) {
			struct fanotify_event_info_mnt *mnt = (void *)(meta + 1);

			if (meta->mask & FAN_Q_OVERFLOW) {
				*overflow = true;
				continue;
			}
			stat_mount(mnt->mnt_id);
			sink += meta->mask;
			n++;
		}
	}
	if (len < 0 && errno != EAGAIN)
		die("read(fanotify)");
	return n;
}

/* --- the mountinfo consumer --------------------------------------------- */

static size_t read_mountinfo(void)
{
	int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
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
	const uint32_t *x = a, *y = b;

	return (*x > *y) - (*x < *y);
}

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

static unsigned int diff_snapshots(const struct snapshot *a, const struct snapshot *b)
{
	size_t i = 0, j = 0;
	unsigned int changes = 0;

	while (i < a->nr || j < b->nr) {
		if (j == b->nr || (i < a->nr && a->v[i].id < b->v[j].id)) {
			i++;
			changes++;
		} else if (i == a->nr || b->v[j].id < a->v[i].id) {
			j++;
			changes++;
		} else {
			changes += a->v[i].hash != b->v[j].hash;
			i++;
			j++;
		}
	}
	return changes;
}

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

static void report(const char *table, const char *row, const char *col,
		   const char *fmt, double v)
{
	printf("BENCH\t%s\t%s\t%s\t", table, row, col);
	printf(fmt, v);
	printf("\n");
}

/* --- 1. one change, three consumers --------------------------------------- */

static void bench_learn(unsigned int nr_mounts, unsigned int reps)
{
	uint64_t *t_ring = calloc(reps, 8), *t_warm = calloc(reps, 8), *t_after = calloc(reps, 8),
		 *t_fan = calloc(reps, 8), *t_info = calloc(reps, 8);
	struct snapshot snap[2] = { { 0 } };
	char dir[64], src[96], toggle[96], row[32];
	struct ring r, idle;
	int fan, cur = 0;
	uint64_t lost = 0;

	if (!t_ring || !t_warm || !t_after || !t_fan || !t_info)
		die("calloc");
	snprintf(dir, sizeof(dir), BASE "/n%u", nr_mounts);
	xmkdir(dir);
	xmount("bench", dir, "tmpfs", 0);
	snprintf(src, sizeof(src), "%s/src", dir);
	xmkdir(src);
	for (unsigned int i = 0; i < nr_mounts; i++) {
		char target[96];

		snprintf(target, sizeof(target), "%s/m%u", dir, i);
		xmkdir(target);
		xmount(src, target, NULL, MS_BIND);
	}
	snprintf(toggle, sizeof(toggle), "%s/x", dir);
	xmkdir(toggle);

	ring_open(&r, RING_PAGES, dir);
	fan = fan_open(0);
	parse_mountinfo(&snap[cur], read_mountinfo());

	for (unsigned int i = 0; i < reps; i++) {
		unsigned int got_ring, got_fan, changes;
		bool overflow = false;
		uint64_t t0;

		toggle_mount(src, toggle, i);

		t0 = now_ns();
		got_ring = ring_drain(&r, &lost);
		t_ring[i] = now_ns() - t0;

		t0 = now_ns();
		got_fan = fan_drain(fan, &overflow);
		t_fan[i] = now_ns() - t0;

		t0 = now_ns();
		parse_mountinfo(&snap[!cur], read_mountinfo());
		changes = diff_snapshots(&snap[cur], &snap[!cur]);
		t_info[i] = now_ns() - t0;
		cur = !cur;

		if (got_ring != 1 || got_fan != 1 || changes != 1 || lost || overflow) {
			fprintf(stderr, "mount_fanotify_bench: N=%u rep %u: ring %u, fanotify %u, mountinfo %u\n",
				nr_mounts, i, got_ring, got_fan, changes);
			exit(1);
		}
	}
	/* The same operations, an empty ring looked at first: the cost of looking. */
	ring_open(&idle, RING_PAGES, NULL);
	for (unsigned int i = 0; i < reps; i++) {
		bool overflow = false;
		uint64_t t0;

		toggle_mount(src, toggle, i);
		t0 = now_ns();
		if (ring_drain(&idle, &lost) != 0)
			die("ring empty look");
		t_warm[i] = now_ns() - t0;
		t0 = now_ns();
		if (ring_drain(&r, &lost) != 1)
			die("ring");
		t_after[i] = now_ns() - t0;
		fan_drain(fan, &overflow);
	}
	ring_close(&idle);

	snprintf(row, sizeof(row), "N=%u", nr_mounts);
	{
		double a = median(t_ring, reps), w = median(t_warm, reps),
		       f = median(t_fan, reps), m = median(t_info, reps);

		report(T_LEARN, row, "ring", "%.0f", a);
		report(T_LEARN, row, "ring, empty look", "%.0f", w);
		report(T_LEARN, row, "ring after the look", "%.0f", median(t_after, reps));
		report(T_LEARN, row, "fanotify+statmount", "%.0f", f);
		report(T_LEARN, row, "mountinfo diff", "%.0f", m);
		report(T_LEARN, row, "fanotify/ring", "%.1fx", f / (a ? a : 1));
		report(T_LEARN, row, "mountinfo/ring", "%.0fx", m / (a ? a : 1));
	}
	close(fan);
	ring_close(&r);
	if (umount2(dir, MNT_DETACH) < 0)
		die("umount2");
	free(snap[0].v);
	free(snap[1].v);
	free(t_ring);
	free(t_warm);
	free(t_after);
	free(t_fan);
	free(t_info);
}

/* --- 2. a burst ------------------------------------------------------------ */

static void make_burst_dirs(const char *dir)
{
	char path[96];

	xmount("bench", dir, "tmpfs", 0);
	for (unsigned int i = 0; i < BURST; i++) {
		snprintf(path, sizeof(path), "%s/m%u", dir, i);
		xmkdir(path);
	}
}

static uint64_t do_burst(const char *dir)
{
	char path[96];
	uint64_t t0 = now_ns();

	for (unsigned int i = 0; i < BURST; i++) {
		snprintf(path, sizeof(path), "%s/m%u", dir, i);
		xmount(dir, path, NULL, MS_BIND);
	}
	return now_ns() - t0;
}

static void set_fanotify_queue(unsigned int n)
{
	char v[32];
	int fd = open("/proc/sys/fs/fanotify/max_queued_events", O_WRONLY);

	if (fd < 0)
		die("/proc/sys/fs/fanotify/max_queued_events");
	snprintf(v, sizeof(v), "%u", n);
	if (write(fd, v, strlen(v)) < 0)
		die("max_queued_events");
	close(fd);
}

static void bench_burst(void)
{
	const char *dir = BASE "/burst";
	uint64_t t_mount, c0, w0, c_ring, c_fan, w_ring, w_fan, lost = 0, t0, t_rescan;
	struct ring r, small;
	bool overflow = false;
	struct snapshot s = { 0 };
	unsigned int got_ring, got_fan, got_small;
	int fan, fan_small;
	struct watch_queue_loss tail_loss;

	xmkdir(dir);
	make_burst_dirs(dir);
	ring_open(&r, RING_PAGES, dir);
	ring_open(&small, SMALL_PAGES, dir);
	fan = fan_open(0);
	set_fanotify_queue(FAN_SMALL_QUEUE);
	fan_small = fan_open(FAN_SMALL_QUEUE);

	t_mount = do_burst(dir);

	w0 = now_ns();
	c0 = cpu_ns();
	got_ring = ring_drain(&r, &lost);
	c_ring = cpu_ns() - c0;
	w_ring = now_ns() - w0;
	w0 = now_ns();
	c0 = cpu_ns();
	got_fan = fan_drain(fan, &overflow);
	c_fan = cpu_ns() - c0;
	w_fan = now_ns() - w0;
	if (got_ring != BURST || lost || got_fan != BURST || overflow) {
		fprintf(stderr, "mount_fanotify_bench: burst: ring %u (+%llu lost), fanotify %u%s\n",
			got_ring, (unsigned long long)lost, got_fan,
			overflow ? " (overflow)" : "");
		exit(1);
	}

	/* The small queues overflowed: what does each consumer learn? */
	lost = 0;
	got_small = ring_drain(&small, &lost);
	if (ioctl(small.fd, IOC_WATCH_QUEUE_TAKE_LOSS, &tail_loss) < 0)
		die("IOC_WATCH_QUEUE_TAKE_LOSS");
	lost += tail_loss.nr_lost;
	overflow = false;
	got_fan = fan_drain(fan_small, &overflow);
	t0 = now_ns();
	parse_mountinfo(&s, read_mountinfo());
	t_rescan = now_ns() - t0;

	report(T_BURST, "bind mounts/s, both watching", "both", "%.0f", BURST * 1e9 / t_mount);
	report(T_BURST, "records/s drained", "ring", "%.0f", BURST * 1e9 / w_ring);
	report(T_BURST, "records/s drained", "fanotify", "%.0f", BURST * 1e9 / w_fan);
	report(T_BURST, "consumer CPU ns/record", "ring", "%.0f", (double)c_ring / BURST);
	report(T_BURST, "consumer CPU ns/record", "fanotify", "%.0f", (double)c_fan / BURST);
	report(T_BURST, "consumer CPU ns/record", "fanotify/ring", "%.1fx",
	       (double)c_fan / (c_ring ? c_ring : 1));
	report(T_BURST, "overflow: records received", "ring", "%.0f", got_small);
	report(T_BURST, "overflow: records received", "fanotify", "%.0f", got_fan);
	report(T_BURST, "overflow: what the consumer learns", "ring", lost + got_small == BURST ?
	       "exact loss count: %.0f" : "WRONG loss count: %.0f", lost);
	report(T_BURST, "overflow: what the consumer learns", "fanotify",
	       overflow ? "FAN_Q_OVERFLOW (%.0f lost, unknown)" : "no overflow (%.0f)",
	       BURST - got_fan);
	report(T_BURST, "overflow: rescan ns (mountinfo)", "fanotify", "%.0f", t_rescan);
	printf("BENCH\t%s\t%s\t%s\t%s\n", T_BURST, "overflow: rescan ns (mountinfo)",
	       "ring", "none needed");

	close(fan);
	close(fan_small);
	ring_close(&r);
	ring_close(&small);
	if (umount2(dir, MNT_DETACH) < 0)
		die("umount2");
	free(s.v);
}

int main(int argc, char **argv)
{
	unsigned int max = argc > 1 ? strtoul(argv[1], NULL, 0) : 10000;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (unshare(CLONE_NEWNS) < 0)
		die("unshare(CLONE_NEWNS)");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die("make / private");
	xmount("bench", BASE, "tmpfs", 0);
	for (unsigned int i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		if (sizes[i].nr_mounts <= max)
			bench_learn(sizes[i].nr_mounts, sizes[i].reps);
	bench_burst();
	fprintf(stderr, "mount_fanotify_bench: checksum %llu\n", (unsigned long long)sink);
	return 0;
}
