/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The headers, system call wrappers and small helpers shared by the
 * selftests, the benchmarks and the checker drivers.  Every number comes from the installed
 * uapi headers (-isystem $(HDR)): __NR_watch_mount from <asm/unistd_64.h>,
 * KEYCTL_* from <linux/keyctl.h>.  <linux/watch_queue.h> goes with the C
 * library's <fcntl.h> and <sys/mount.h> like any other header.
 */
#ifndef WQ_UTIL_H
#define WQ_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <linux/keyctl.h>
#include <linux/mount.h>
#include <linux/watch_queue.h>

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

typedef int32_t key_serial_t;

static inline int sys_open(const char *path, int flags)
{
	return open(path, flags, 0);
}

static inline long kctl(int cmd, unsigned long a2, unsigned long a3, unsigned long a4,
			unsigned long a5)
{
	return syscall(__NR_keyctl, cmd, a2, a3, a4, a5);
}

static inline key_serial_t add_key(const char *type, const char *desc, const void *payload,
				   size_t plen, key_serial_t ring)
{
	return syscall(__NR_add_key, type, desc, payload, plen, ring);
}

static inline long watch_key(key_serial_t key, int fd, int watch_id)
{
	return kctl(KEYCTL_WATCH_KEY, (unsigned long)key, (unsigned long)fd,
		    (unsigned long)(long)watch_id, 0);
}

static inline long key_update(key_serial_t key, const char *data)
{
	return kctl(KEYCTL_UPDATE, (unsigned long)key, (unsigned long)data, strlen(data), 0);
}

static inline long watch_mount(int dfd, const char *path, unsigned int at_flags,
			       int watch_fd, int watch_id)
{
	return syscall(__NR_watch_mount, dfd, path, at_flags, watch_fd, watch_id);
}

/*
 * Did a system call that returned @ret fail because this kernel does not have
 * it (configured out, or older than the call)?  errno is compared with the
 * kernel's own answer to a system call number that none has (-1), and kept.
 */
static inline bool syscall_missing(long ret)
{
	int err = errno;
	bool missing;

	if (ret >= 0)
		return false;
	syscall(-1L);
	missing = errno == err;
	errno = err;
	return missing;
}

/* Print "<program>: what: strerror(errno)" and exit 1. */
static inline void die(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(errno));
	exit(1);
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static inline void xmount(const char *src, const char *dst, const char *type,
			  unsigned long flags)
{
	if (syscall(__NR_mount, src, dst, type, flags, NULL) < 0)
		die(dst);
}

static inline void xmkdir(const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die(path);
}

/*
 * The stress tests' size: mount/umount cycles, queues made and closed, watches
 * set and removed, rings opened.  WATCH_QUEUE_STRESS_CYCLES makes it smaller
 * (a KASAN and lockdep kernel is several times slower).
 */
#define DEFAULT_CYCLES 10000
#define CYCLES stress_cycles()

static inline unsigned int stress_cycles(void)
{
	static unsigned int cycles;
	const char *env;

	if (!cycles) {
		env = getenv("WATCH_QUEUE_STRESS_CYCLES");
		cycles = env ? strtoul(env, NULL, 10) : 0;
		if (!cycles || cycles > DEFAULT_CYCLES)
			cycles = DEFAULT_CYCLES;
	}
	return cycles;
}

/*
 * Run @fn(@arg) in a child, as @uid with RLIMIT_NOFILE at @nofile (which
 * bounds the user's watches), and wait for it.  Returns what @fn returned
 * (0..255), 255 if the child could not become @uid, or -1 if it could not be
 * made or did not exit normally.
 */
static inline int run_as_user(uid_t uid, rlim_t nofile, int (*fn)(void *), void *arg)
{
	struct rlimit rl = { .rlim_cur = nofile, .rlim_max = nofile };
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		if (setrlimit(RLIMIT_NOFILE, &rl) || setresgid(uid, uid, uid) ||
		    setresuid(uid, uid, uid)) {
			perror("becoming the test user");
			_exit(255);
		}
		_exit(fn(arg) & 0xff);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* splitmix64: a small, seedable generator for reproducible random tests. */
static inline uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#endif /* WQ_UTIL_H */
