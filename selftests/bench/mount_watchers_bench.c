// SPDX-License-Identifier: GPL-2.0
/*
 * What many mount watches cost, and who pays.  An unprivileged user, in a
 * user and mount namespace of its own, sets 0, 100 and then 10,000 watches on
 * "/" (one notification pipe each, nobody reading them).  One thread, on
 * vCPU 0, bind-mounts and unmounts a directory at a fixed rate (so that every
 * run takes mount_lock for write as often); another, on vCPU 1, stat()s a
 * path that crosses four mountpoints as fast as it can.  For each number of
 * watches it reports:
 *
 *  - the latency of one bind mount plus umount, which includes posting two
 *    records to every watch: the task that changes the tree pays;
 *  - the stat() loop's throughput in the same window, which should not depend
 *    on the number of watches: records are posted after mount_lock is
 *    dropped, so path walks never wait for them.
 *
 * Under TCG one window's throughput wanders by tens of percent with the host,
 * so each round measures every number of watches once, back to back, and the
 * comparison with no watches is the median over the rounds of each round's
 * own ratio: a drift of the host cancels out within a round.
 *
 * Run as root: it raises RLIMIT_NOFILE (one fd per watch) before dropping to
 * uid 65534.  Prints "BENCH<TAB>table<TAB>row<TAB>column<TAB>value" lines for
 * the harness (make bench).  A benchmark, not a test: it never judges a number.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/watch_queue.h>

#include "../wq_util.h"

#define TABLE		"mount watches: who pays (unprivileged, 2 vCPUs)"
#define MAX_WATCHES	10000
#define WINDOW_NS	2000000000ull	/* each measurement window */
#define PERIOD_NS	100000000ull	/* one bind+umount every 100 ms */
#define ROUNDS		15		/* windows per number of watches */
#define MAX_CYCLES	(ROUNDS * (WINDOW_NS / PERIOD_NS + 8))
#define MS_BIND_	0x1000ul

/*
 * Each round measures every number of watches once, starting one further
 * along each time, so that a drift of the host shows as spread instead of
 * as a difference between the rows.
 */
static const unsigned int counts[] = { 0, 100, MAX_WATCHES };
#define NR_COUNTS	ARRAY_SIZE(counts)

struct row {
	uint64_t lat[MAX_CYCLES];	/* every bind+umount, all rounds */
	unsigned int cycles;
	double ops[ROUNDS];		/* stat() per second, by round */
	unsigned int rounds;
};

static void write_file(const char *path, const char *text)
{
	int fd = syscall(__NR_openat, AT_FDCWD, path, O_WRONLY);
	ssize_t len = (ssize_t)strlen(text);

	if (fd < 0 || write(fd, text, len) != len)
		die(path);
	close(fd);
}

/* A watch on "/" through a notification pipe of its own; returns its fd. */
static int add_watch(unsigned int i)
{
	int pfd[2];

	if (pipe2(pfd, O_NOTIFICATION_PIPE | O_NONBLOCK | O_CLOEXEC) < 0)
		die("pipe2(O_NOTIFICATION_PIPE)");
	if (ioctl(pfd[0], IOC_WATCH_QUEUE_SET_SIZE, 16) < 0)
		die("IOC_WATCH_QUEUE_SET_SIZE");
	if (watch_mount(AT_FDCWD, "/", 0, pfd[0], i & 0xff) < 0)
		die("watch_mount");
	close(pfd[1]);
	return pfd[0];
}

struct stat_loop {
	volatile int run, stop;
	volatile uint64_t ops;
};

static void pin_to_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		die("sched_setaffinity");
}

static void *stat_loop(void *arg)
{
	struct stat_loop *s = arg;
	struct stat st;

	pin_to_cpu(1);

	while (!s->stop) {
		if (!s->run) {
			sched_yield();
			continue;
		}
		if (stat("/mnt/p1/p2/p3/f", &st) < 0)
			die("stat");
		s->ops++;
	}
	return NULL;
}

static int u64_cmp(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return (*x > *y) - (*x < *y);
}

/* One window: bind+umount at a fixed rate on this CPU, stat() on the other. */
static void measure(struct stat_loop *s, struct row *r)
{
	uint64_t t0, t1, ops0, ops1;
	unsigned int n = 0;

	s->run = 1;
	ops0 = s->ops;
	t0 = now_ns();
	do {
		uint64_t a = now_ns(), next = t0 + (n + 1) * PERIOD_NS;

		xmount("/mnt/src", "/mnt/t", NULL, MS_BIND_);
		if (syscall(__NR_umount2, "/mnt/t", 0) < 0)
			die("umount2");
		n++;
		if (r->cycles < MAX_CYCLES)
			r->lat[r->cycles++] = now_ns() - a;
		t1 = now_ns();
		if (t1 < next) {
			struct timespec ts = {
				.tv_sec = (next - t1) / 1000000000ull,
				.tv_nsec = (next - t1) % 1000000000ull,
			};

			nanosleep(&ts, NULL);
			t1 = now_ns();
		}
	} while (t1 - t0 < WINDOW_NS);
	ops1 = s->ops;
	s->run = 0;
	r->ops[r->rounds++] = (ops1 - ops0) * 1e9 / (t1 - t0);
}

static int double_cmp(const void *a, const void *b)
{
	const double *x = a, *y = b;

	return (*x > *y) - (*x < *y);
}

/* The median of @n values; sorts them. */
static double median(double *v, unsigned int n)
{
	qsort(v, n, sizeof(v[0]), double_cmp);
	return v[n / 2];
}

static void report(struct row *rows)
{
	double base_lat = 0;

	for (unsigned int i = 0; i < NR_COUNTS; i++) {
		struct row *r = &rows[i];
		double ratio[ROUNDS], ops[ROUNDS], lat, med, rel;
		char name[32];

		/* Pair each round with the same round without watches, then sort. */
		for (unsigned int k = 0; k < r->rounds; k++) {
			ratio[k] = r->ops[k] / rows[0].ops[k];
			ops[k] = r->ops[k];
		}
		rel = (median(ratio, r->rounds) - 1) * 100;
		med = median(ops, r->rounds);
		qsort(r->lat, r->cycles, sizeof(r->lat[0]), u64_cmp);
		lat = r->lat[r->cycles / 2] / 1e3;
		if (i == 0)
			base_lat = lat;
		snprintf(name, sizeof(name), "%u watches", counts[i]);
		printf("BENCH\t" TABLE "\t%s\tbind+umount us (median)\t%.1f\n", name, lat);
		printf("BENCH\t" TABLE "\t%s\tcycles\t%u\n", name, r->cycles);
		printf("BENCH\t" TABLE "\t%s\tstat() per s (median of %u)\t%.0f\n", name,
		       r->rounds, med);
		/* ops[] is sorted now. */
		printf("BENCH\t" TABLE "\t%s\tspread of the rounds\t%+.1f%% .. %+.1f%%\n",
		       name, (ops[0] / med - 1) * 100, (ops[r->rounds - 1] / med - 1) * 100);
		if (!counts[i])
			continue;
		/* ratio[] is sorted now: the rounds' own ratios, lowest to highest. */
		printf("BENCH\t" TABLE "\t%s\tstat() vs 0 watches, same round (median)\t%+.1f%%\n",
		       name, rel);
		printf("BENCH\t" TABLE "\t%s\tthose ratios: middle half\t%+.1f%% .. %+.1f%%\n",
		       name, (ratio[r->rounds / 4] - 1) * 100,
		       (ratio[r->rounds - 1 - r->rounds / 4] - 1) * 100);
		printf("BENCH\t" TABLE "\t%s\tadded ns per record per watch\t%.0f\n",
		       name, (lat - base_lat) * 1e3 / (2.0 * counts[i]));
	}
}

static int run_unprivileged(void)
{
	static int fds[MAX_WATCHES];
	static struct row rows[NR_COUNTS];
	struct stat_loop s = { 0 };
	unsigned int have = 0;
	pthread_t th;

	if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
		die("setresuid(65534)");
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
		die("PR_SET_DUMPABLE");
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		die("unshare(CLONE_NEWUSER | CLONE_NEWNS)");
	write_file("/proc/self/setgroups", "deny");
	write_file("/proc/self/uid_map", "0 65534 1");
	write_file("/proc/self/gid_map", "0 65534 1");

	/* /mnt/p1/p2/p3/f crosses four mountpoints; /mnt/t is bound and unbound. */
	xmount("bench", "/mnt", "tmpfs", 0);
	xmkdir("/mnt/src");
	xmkdir("/mnt/t");
	xmkdir("/mnt/p1");
	xmount("bench", "/mnt/p1", "tmpfs", 0);
	xmkdir("/mnt/p1/p2");
	xmount("bench", "/mnt/p1/p2", "tmpfs", 0);
	xmkdir("/mnt/p1/p2/p3");
	xmount("bench", "/mnt/p1/p2/p3", "tmpfs", 0);
	xmkdir("/mnt/p1/p2/p3/f");

	pin_to_cpu(0);
	if (pthread_create(&th, NULL, stat_loop, &s))
		die("pthread_create");
	for (unsigned int round = 0; round < ROUNDS; round++) {
		for (unsigned int k = 0; k < NR_COUNTS; k++) {
			unsigned int i = (round + k) % NR_COUNTS;
			uint64_t t0 = now_ns();

			while (have > counts[i])
				close(fds[--have]);
			while (have < counts[i]) {
				fds[have] = add_watch(have);
				have++;
			}
			if (counts[i])
				fprintf(stderr, "mount_watchers_bench: %u watches set in %.2f s\n",
					counts[i], (now_ns() - t0) / 1e9);
			measure(&s, &rows[i]);
		}
	}
	s.stop = 1;
	pthread_join(th, NULL);
	report(rows);
	return 0;
}

int main(void)
{
	struct rlimit rl = { MAX_WATCHES + 256, MAX_WATCHES + 256 };
	int status;
	pid_t pid;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (watch_mount(AT_FDCWD, "/", 0, -1, 1) < 0 && errno == ENOSYS) {
		fprintf(stderr, "mount_watchers_bench: no watch_mount() in this kernel\n");
		return 1;
	}
	/* One fd per watch, and the per-user watch limit is RLIMIT_NOFILE. */
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("setrlimit(RLIMIT_NOFILE)");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		_exit(run_unprivileged());
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
