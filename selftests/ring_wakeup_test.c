// SPDX-License-Identifier: GPL-2.0
/*
 * Wake-ups of a /dev/watch_queue ring consumer: it must never sleep while a
 * record is waiting, whether it waits in poll(), in a level-triggered epoll or
 * in an edge-triggered one (EPOLLET), which is told of new records only once.
 *
 * A producer thread on one vCPU injects records (IOC_WATCH_QUEUE_INJECT) at
 * random small intervals; the consumer on the other vCPU follows the consumer
 * protocol of Documentation/core-api/watch_queue.rst (store tail, full
 * barrier, last look at head, sleep).  A wait that times out while head !=
 * tail is a lost wake-up.  The writer used to decide whether to wake from the
 * tail it read before writing the record: a consumer that caught up and went
 * to sleep in between was never woken.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/watch_queue.h>

#include "kselftest_harness.h"
#include "wq_util.h"

#define NR_PAGES	1
#define WAIT_MS		2000

enum waiter { WAIT_POLL, WAIT_EPOLL_LT, WAIT_EPOLL_ET };

struct producer {
	int fd;
	unsigned int records;
	unsigned int seed;
	unsigned int posted;	/* injected without error */
	int errors;
};

static void pin_to_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* Busy-wait for @n loads and stores of a counter (the compiler keeps them all). */
static void spin(unsigned int n)
{
	unsigned int s = 0;

	while (__atomic_load_n(&s, __ATOMIC_RELAXED) < n)
		__atomic_store_n(&s, s + 1, __ATOMIC_RELAXED);
}

/* Inject 1-slot records with a random pause of 0..~20 us before each. */
static void *produce(void *arg)
{
	struct producer *p = arg;
	struct watch_notification n = {
		.type = WATCH_TYPE_KEY_NOTIFY,
		.subtype = 0,
		.info = 1,
	};

	pin_to_cpu(1);
	for (unsigned int i = 0; i < p->records; i++) {
		spin(rand_r(&p->seed) % 2000);
		if (ioctl(p->fd, IOC_WATCH_QUEUE_INJECT, &n) == 0)
			__atomic_fetch_add(&p->posted, 1, __ATOMIC_RELEASE);
		else
			__atomic_fetch_add(&p->errors, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

FIXTURE(wakeup) {
	int fd;
	unsigned char *ring;
	struct watch_queue_ring_meta *meta;
	uint32_t mask;
	size_t len;
};

FIXTURE_SETUP(wakeup)
{
	struct watch_notification probe = { .type = WATCH_TYPE_KEY_NOTIFY, .info = 1 };
	struct watch_queue_loss lost;

	self->fd = open("/dev/watch_queue", O_RDWR | O_CLOEXEC);
	ASSERT_GE(self->fd, 0) TH_LOG("open /dev/watch_queue: %s", strerror(errno));
	/* The injection ioctl exists only in test kernels. */
	if (ioctl(self->fd, IOC_WATCH_QUEUE_INJECT, &probe) < 0 && errno == ENOTTY)
		SKIP(return, "no IOC_WATCH_QUEUE_INJECT (CONFIG_WATCH_QUEUE_TEST_INJECT=n)");
	ASSERT_EQ(ioctl(self->fd, IOC_WATCH_QUEUE_TAKE_LOSS, &lost), 0);
	ASSERT_EQ(ioctl(self->fd, IOC_WATCH_QUEUE_NR_PAGES, NR_PAGES), 0);
	self->len = NR_PAGES * (size_t)sysconf(_SC_PAGESIZE);
	self->ring = mmap(NULL, self->len, PROT_READ | PROT_WRITE, MAP_SHARED,
			  self->fd, 0);
	ASSERT_NE(self->ring, MAP_FAILED);
	self->meta = (struct watch_queue_ring_meta *)self->ring;
	self->mask = self->len / 8 - 1;
}

FIXTURE_TEARDOWN(wakeup)
{
	if (self->ring && self->ring != MAP_FAILED)
		munmap(self->ring, self->len);
	close(self->fd);
}

/*
 * Consume @records records posted by a producer on the other vCPU, sleeping in
 * @how whenever the ring is empty.  Returns the number of sleeps that timed
 * out with a record waiting (lost wake-ups).
 */
static int consume(struct __test_metadata *_metadata,
		   struct _test_data_wakeup *self, enum waiter how,
		   unsigned int records)
{
	struct producer p = { .fd = self->fd, .records = records, .seed = 1 + how };
	unsigned int got = 0, lost_total = 0, sleeps = 0;
	struct epoll_event ev = { .events = EPOLLIN };
	int epfd = -1, lost_wakeups = 0;
	struct watch_queue_loss lost;
	uint32_t head, tail;
	pthread_t th;

	if (how != WAIT_POLL) {
		epfd = epoll_create1(EPOLL_CLOEXEC);
		ASSERT_GE(epfd, 0);
		if (how == WAIT_EPOLL_ET)
			ev.events |= EPOLLET;
		ASSERT_EQ(epoll_ctl(epfd, EPOLL_CTL_ADD, self->fd, &ev), 0);
	}
	pin_to_cpu(0);
	ASSERT_EQ(pthread_create(&th, NULL, produce, &p), 0);

	tail = self->meta->tail;
	while (got + lost_total < records) {
		int ret;

		head = __atomic_load_n(&self->meta->head, __ATOMIC_ACQUIRE);
		while (tail != head) {
			const struct watch_notification *n =
				(const void *)(self->ring + (tail & self->mask) * 8);
			unsigned int slots = n->info & WATCH_INFO_NR_SLOTS;

			ASSERT_NE(slots, 0U);
			if (n->type == WATCH_TYPE_META &&
			    n->subtype == WATCH_META_LOSS_NOTIFICATION)
				lost_total += ((const uint32_t *)n)[2];
			else if (n->type == WATCH_TYPE_KEY_NOTIFY)
				got++;
			tail += slots;
			__atomic_store_n(&self->meta->tail, tail, __ATOMIC_RELEASE);
		}
		/* The protocol: store tail, full barrier, last look at head. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(&self->meta->head, __ATOMIC_ACQUIRE) != tail)
			continue;
		if (got + lost_total >= records || lost_wakeups >= 3)
			break;
		if (__atomic_load_n(&p.errors, __ATOMIC_RELAXED))
			break;

		sleeps++;
		if (how == WAIT_POLL) {
			struct pollfd pfd = { .fd = self->fd, .events = POLLIN };

			ret = poll(&pfd, 1, WAIT_MS);
		} else {
			ret = epoll_wait(epfd, &ev, 1, WAIT_MS);
		}
		ASSERT_GE(ret, 0);
		if (ret == 0 &&
		    __atomic_load_n(&self->meta->head, __ATOMIC_ACQUIRE) != tail) {
			lost_wakeups++;
			TH_LOG("slept %d ms with records waiting (tail %u, head %u)",
			       WAIT_MS, tail, self->meta->head);
		}
		if (ret == 0 &&
		    __atomic_load_n(&p.posted, __ATOMIC_ACQUIRE) == records &&
		    self->meta->head == tail) {
			/* Everything posted is consumed; the rest was lost. */
			ASSERT_EQ(ioctl(self->fd, IOC_WATCH_QUEUE_TAKE_LOSS, &lost), 0);
			ASSERT_EQ(lost.head, tail);
			lost_total += lost.nr_lost;
		}
	}
	ASSERT_EQ(pthread_join(th, NULL), 0);
	ASSERT_EQ(ioctl(self->fd, IOC_WATCH_QUEUE_TAKE_LOSS, &lost), 0);
	lost_total += lost.nr_lost;
	EXPECT_EQ(p.errors, 0);
	if (!lost_wakeups)
		EXPECT_EQ(got + lost_total, records);
	TH_LOG("%u records: %u consumed, %u lost to a full ring, %u sleeps",
	       records, got, lost_total, sleeps);
	if (epfd >= 0)
		close(epfd);
	return lost_wakeups;
}

TEST_F_TIMEOUT(wakeup, epollet_consumer_never_sleeps_with_records_waiting, 600)
{
	EXPECT_EQ(consume(_metadata, self, WAIT_EPOLL_ET, 10 * CYCLES), 0);	/* 100,000 */
}

TEST_F_TIMEOUT(wakeup, epoll_consumer_never_sleeps_with_records_waiting, 600)
{
	EXPECT_EQ(consume(_metadata, self, WAIT_EPOLL_LT, 2 * CYCLES), 0);	/* 20,000 */
}

TEST_F_TIMEOUT(wakeup, poll_consumer_never_sleeps_with_records_waiting, 600)
{
	EXPECT_EQ(consume(_metadata, self, WAIT_POLL, 2 * CYCLES), 0);	/* 20,000 */
}

TEST_HARNESS_MAIN
