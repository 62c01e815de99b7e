/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_user_kernel.h - the slice of the kernel API that runtime_c uses,
 * implemented for an ordinary process (stapbuild --runtime=user).
 *
 * The runtime is written against the kernel. Built with -DSTP_USER, its
 * headers include this file instead of <linux/...>, and the same code then
 * runs as a normal single-threaded process: one "CPU", no preemption, locks
 * that always succeed, vmalloc = calloc, and a clock that the user main
 * loop (stp_user_main.h) may run in virtual time so that timer probes do not
 * sleep. Nothing here is meant to be a general kernel emulation: only what
 * runtime_c and the tapsets' embedded C call.
 */
#ifndef STP_USER_KERNEL_H
#define STP_USER_KERNEL_H

#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/uio.h>

/* ---- types ---- */
typedef int8_t s8;
typedef uint8_t u8;
typedef int16_t s16;
typedef uint16_t u16;
typedef int32_t s32;
typedef uint32_t u32;
typedef long long s64;
typedef unsigned long long u64;
typedef long long loff_t_stp;
typedef u64 ktime_t;

#define __user
#define __percpu
#define __init
#define __exit
#define __maybe_unused __attribute__((__unused__))
#define __printf(a, b) __attribute__((format(printf, a, b)))
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define noinline __attribute__((noinline))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define fallthrough __attribute__((__fallthrough__))
#define READ_ONCE(x) (*(volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

#define KBUILD_MODNAME "stapbuild_user"
#define NSEC_PER_SEC 1000000000ULL
#define NSEC_PER_USEC 1000ULL
#ifndef HZ
#define HZ 250
#endif
#define PAGE_SIZE 4096UL
#define GFP_KERNEL 0
#define GFP_ATOMIC 0
#define ERESTARTSYS 512

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN(x, a) (((x) + ((__typeof__(x))(a) - 1)) & ~((__typeof__(x))(a) - 1))
#define min(a, b) ({ __typeof__(a) _a = (a); __typeof__(b) _b = (b); _a < _b ? _a : _b; })
#define max(a, b) ({ __typeof__(a) _a = (a); __typeof__(b) _b = (b); _a > _b ? _a : _b; })
#define min_t(t, a, b) ({ t _a = (a); t _b = (b); _a < _b ? _a : _b; })
#define max_t(t, a, b) ({ t _a = (a); t _b = (b); _a > _b ? _a : _b; })
#define clamp_t(t, v, lo, hi) min_t(t, max_t(t, v, lo), hi)
#define clamp(v, lo, hi) min(max(v, lo), hi)
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))
#define WARN_ON_ONCE(c) ({ int __c = !!(c); if (__c) fprintf(stderr, "stapbuild user runtime: WARN_ON_ONCE at %s:%d\n", __FILE__, __LINE__); __c; })
#define BUG_ON(c) do { if (c) abort(); } while (0)

static inline size_t array_size(size_t a, size_t b)
{
	if (b && a > SIZE_MAX / b)
		return SIZE_MAX;
	return a * b;
}

static inline unsigned long roundup_pow_of_two(unsigned long n)
{
	unsigned long p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

/* ---- 64-bit division ---- */
static inline s64 div64_s64(s64 a, s64 b) { return a / b; }
static inline u64 div64_u64(u64 a, u64 b) { return a / b; }
static inline u64 div64_u64_rem(u64 a, u64 b, u64 *rem)
{
	*rem = a % b;
	return a / b;
}
static inline u64 div_u64(u64 a, u32 b) { return a / b; }

/* ---- atomics: one thread, but keep them honest anyway ---- */
typedef struct { int counter; } atomic_t;
#define ATOMIC_INIT(i) { (i) }
static inline int atomic_read(const atomic_t *v) { return __atomic_load_n(&v->counter, __ATOMIC_SEQ_CST); }
static inline void atomic_set(atomic_t *v, int i) { __atomic_store_n(&v->counter, i, __ATOMIC_SEQ_CST); }
static inline void atomic_inc(atomic_t *v) { __atomic_add_fetch(&v->counter, 1, __ATOMIC_SEQ_CST); }
static inline void atomic_dec(atomic_t *v) { __atomic_sub_fetch(&v->counter, 1, __ATOMIC_SEQ_CST); }
static inline void atomic_add(int i, atomic_t *v) { __atomic_add_fetch(&v->counter, i, __ATOMIC_SEQ_CST); }
static inline int atomic_inc_return(atomic_t *v) { return __atomic_add_fetch(&v->counter, 1, __ATOMIC_SEQ_CST); }
static inline int atomic_dec_return(atomic_t *v) { return __atomic_sub_fetch(&v->counter, 1, __ATOMIC_SEQ_CST); }
static inline int atomic_xchg(atomic_t *v, int i) { return __atomic_exchange_n(&v->counter, i, __ATOMIC_SEQ_CST); }
static inline int atomic_cmpxchg(atomic_t *v, int old, int new_)
{
	__atomic_compare_exchange_n(&v->counter, &old, new_, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	return old;
}
typedef struct { long long counter; } atomic64_t;
#define ATOMIC64_INIT(i) { (i) }
static inline long long atomic64_read(const atomic64_t *v) { return __atomic_load_n(&v->counter, __ATOMIC_SEQ_CST); }
static inline void atomic64_set(atomic64_t *v, long long i) { __atomic_store_n(&v->counter, i, __ATOMIC_SEQ_CST); }
static inline void atomic64_add(long long i, atomic64_t *v) { __atomic_add_fetch(&v->counter, i, __ATOMIC_SEQ_CST); }
static inline void atomic64_inc(atomic64_t *v) { __atomic_add_fetch(&v->counter, 1, __ATOMIC_SEQ_CST); }

/* ---- locks: a single thread never contends ---- */
typedef struct { int held; } spinlock_t;
typedef struct { int readers; int writer; } rwlock_t;
struct mutex { int held; };
#define __SPIN_LOCK_UNLOCKED(name) { 0 }
#define DEFINE_SPINLOCK(name) spinlock_t name = { 0 }
#define DEFINE_RWLOCK(name) rwlock_t name = { 0, 0 }
#define DEFINE_MUTEX(name) struct mutex name = { 0 }
#define spin_lock_init(l) ((l)->held = 0)
#define spin_lock(l) ((l)->held = 1)
#define spin_unlock(l) ((l)->held = 0)
#define spin_trylock(l) ((l)->held ? 0 : ((l)->held = 1))
#define spin_lock_irqsave(l, flags) do { (void)(flags); (l)->held = 1; } while (0)
#define spin_unlock_irqrestore(l, flags) do { (void)(flags); (l)->held = 0; } while (0)
#define spin_trylock_irqsave(l, flags) ({ (void)(flags); spin_trylock(l); })
#define rwlock_init(l) ((l)->readers = (l)->writer = 0)
static inline int read_trylock(rwlock_t *l) { if (l->writer) return 0; l->readers++; return 1; }
static inline int write_trylock(rwlock_t *l) { if (l->writer || l->readers) return 0; l->writer = 1; return 1; }
static inline void read_unlock(rwlock_t *l) { l->readers--; }
static inline void write_unlock(rwlock_t *l) { l->writer = 0; }
#define read_lock(l) ((void)read_trylock(l))
#define write_lock(l) ((void)write_trylock(l))
#define mutex_init(m) ((m)->held = 0)
#define mutex_lock(m) ((m)->held = 1)
#define mutex_unlock(m) ((m)->held = 0)
#define mutex_lock_interruptible(m) ((m)->held = 1, 0)
#define cpu_relax() do { } while (0)
#define udelay(us) do { (void)(us); } while (0)
#define preempt_disable() do { } while (0)
#define preempt_enable() do { } while (0)
#define local_irq_save(f) do { (void)(f); } while (0)
#define local_irq_restore(f) do { (void)(f); } while (0)
#define rcu_read_lock() do { } while (0)
#define rcu_read_unlock() do { } while (0)
#define rcu_dereference_raw(p) (p)
#define smp_mb() __sync_synchronize()
#define barrier() __asm__ __volatile__("" ::: "memory")

/* ---- CPUs: exactly one ---- */
#define nr_cpu_ids 1U
#define num_possible_cpus() 1U
#define num_online_cpus() 1U
#define smp_processor_id() 0
#define raw_smp_processor_id() 0
#define get_cpu() 0
#define put_cpu() do { } while (0)
#define for_each_possible_cpu(cpu) for ((cpu) = 0; (cpu) < 1; (cpu)++)
#define for_each_online_cpu(cpu) for_each_possible_cpu(cpu)

/* ---- memory ---- */
static inline void *kzalloc(size_t n, int gfp) { (void)gfp; return calloc(1, n ? n : 1); }
static inline void *kmalloc(size_t n, int gfp) { (void)gfp; return malloc(n ? n : 1); }
static inline void *kcalloc(size_t n, size_t m, int gfp) { (void)gfp; return calloc(n ? n : 1, m ? m : 1); }
static inline void kfree(const void *p) { free((void *)p); }
static inline void *vzalloc(size_t n) { return calloc(1, n ? n : 1); }
static inline void *vmalloc(size_t n) { return malloc(n ? n : 1); }
static inline void vfree(const void *p) { free((void *)p); }
#define alloc_percpu(type) ((type *)calloc(1, sizeof(type)))
#define free_percpu(p) free(p)
#define this_cpu_ptr(p) (p)
#define per_cpu_ptr(p, cpu) ((void)(cpu), (p))

static inline unsigned long copy_to_user(void *to, const void *from, unsigned long n)
{
	memcpy(to, from, n);
	return 0;
}
static inline unsigned long copy_from_user(void *to, const void *from, unsigned long n)
{
	memcpy(to, from, n);
	return 0;
}

/* Reads of arbitrary addresses (%m, @kderef ...) must fail, not crash. */
static inline long copy_from_kernel_nofault(void *dst, const void *src, size_t n)
{
	struct iovec local = { dst, n }, remote = { (void *)src, n };

	if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != (ssize_t)n)
		return -EFAULT;
	return 0;
}

/* ---- strings ---- */
static inline int vscnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	int n;

	if (!size)
		return 0;
	n = vsnprintf(buf, size, fmt, ap);
	if (n < 0)
		return 0;
	return (size_t)n >= size ? (int)size - 1 : n;
}

static inline __printf(3, 4) int scnprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vscnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

static inline char *strim(char *s)
{
	size_t n = strlen(s);

	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	while (*s && isspace((unsigned char)*s))
		s++;
	return s;
}

/* ---- lists (include/linux/list.h semantics) ---- */
struct list_head { struct list_head *next, *prev; };
struct hlist_head { struct hlist_node *first; };
struct hlist_node { struct hlist_node *next, **pprev; };

#define LIST_HEAD_INIT(name) { &(name), &(name) }
static inline void INIT_LIST_HEAD(struct list_head *l) { l->next = l; l->prev = l; }
static inline void __list_add(struct list_head *n, struct list_head *prev, struct list_head *next)
{
	next->prev = n;
	n->next = next;
	n->prev = prev;
	prev->next = n;
}
static inline void list_add(struct list_head *n, struct list_head *head) { __list_add(n, head, head->next); }
static inline void list_add_tail(struct list_head *n, struct list_head *head) { __list_add(n, head->prev, head); }
static inline void list_del(struct list_head *e)
{
	e->next->prev = e->prev;
	e->prev->next = e->next;
	e->next = e->prev = NULL;
}
static inline void list_del_init(struct list_head *e)
{
	e->next->prev = e->prev;
	e->prev->next = e->next;
	INIT_LIST_HEAD(e);
}
static inline void list_move_tail(struct list_head *e, struct list_head *head)
{
	e->next->prev = e->prev;
	e->prev->next = e->next;
	list_add_tail(e, head);
}
static inline int list_empty(const struct list_head *h) { return h->next == h; }
static inline int list_is_last(const struct list_head *e, const struct list_head *h) { return e->next == h; }
#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define list_first_entry(ptr, type, member) list_entry((ptr)->next, type, member)
#define list_last_entry(ptr, type, member) list_entry((ptr)->prev, type, member)
#define list_first_entry_or_null(ptr, type, member) \
	(list_empty(ptr) ? NULL : list_first_entry(ptr, type, member))
#define list_next_entry(pos, member) list_entry((pos)->member.next, __typeof__(*(pos)), member)
#define list_prev_entry(pos, member) list_entry((pos)->member.prev, __typeof__(*(pos)), member)
#define list_for_each(pos, head) for (pos = (head)->next; pos != (head); pos = pos->next)
#define list_for_each_entry(pos, head, member) \
	for (pos = list_first_entry(head, __typeof__(*pos), member); \
	     &pos->member != (head); pos = list_next_entry(pos, member))
#define list_for_each_entry_safe(pos, n, head, member) \
	for (pos = list_first_entry(head, __typeof__(*pos), member), \
	     n = list_next_entry(pos, member); \
	     &pos->member != (head); pos = n, n = list_next_entry(n, member))

static inline void INIT_HLIST_NODE(struct hlist_node *h) { h->next = NULL; h->pprev = NULL; }
static inline int hlist_unhashed(const struct hlist_node *h) { return !h->pprev; }
static inline void hlist_add_head(struct hlist_node *n, struct hlist_head *h)
{
	struct hlist_node *first = h->first;

	n->next = first;
	if (first)
		first->pprev = &n->next;
	h->first = n;
	n->pprev = &h->first;
}
static inline void hlist_del_init(struct hlist_node *n)
{
	if (hlist_unhashed(n))
		return;
	*n->pprev = n->next;
	if (n->next)
		n->next->pprev = n->pprev;
	INIT_HLIST_NODE(n);
}
#define hlist_entry_safe(ptr, type, member) \
	({ __typeof__(ptr) ____ptr = (ptr); ____ptr ? container_of(____ptr, type, member) : NULL; })
#define hlist_for_each_entry(pos, head, member) \
	for (pos = hlist_entry_safe((head)->first, __typeof__(*(pos)), member); pos; \
	     pos = hlist_entry_safe((pos)->member.next, __typeof__(*(pos)), member))

/* list_sort(): stable merge sort, like lib/list_sort.c. */
typedef int (*list_cmp_func_t)(void *, const struct list_head *, const struct list_head *);
static inline void list_sort(void *priv, struct list_head *head, list_cmp_func_t cmp)
{
	struct list_head *p, *q, *e, *tail, *first;
	size_t insize = 1, psize, qsize, i, nmerges;

	if (list_empty(head) || head->next == head->prev)
		return;
	/* Work on a NULL-terminated singly linked chain through ->next. */
	first = head->next;
	head->prev->next = NULL;
	do {
		p = first;
		first = tail = NULL;
		nmerges = 0;
		while (p) {
			nmerges++;
			q = p;
			psize = 0;
			for (i = 0; i < insize && q; i++) {
				psize++;
				q = q->next;
			}
			qsize = insize;
			while (psize || (qsize && q)) {
				if (psize && (!qsize || !q || cmp(priv, p, q) <= 0)) {
					e = p;
					p = p->next;
					psize--;
				} else {
					e = q;
					q = q->next;
					qsize--;
				}
				if (tail)
					tail->next = e;
				else
					first = e;
				tail = e;
			}
			p = q;
		}
		tail->next = NULL;
		insize *= 2;
	} while (nmerges > 1);
	/* Relink prev pointers and the head. */
	head->next = first;
	first->prev = head;
	for (p = first; p->next; p = p->next)
		p->next->prev = p;
	p->next = head;
	head->prev = p;
}

/* ---- jhash (the kernel's, so hash order is the same in both builds) ---- */
static inline u32 rol32(u32 word, unsigned int shift)
{
	return (word << (shift & 31)) | (word >> ((-shift) & 31));
}
#define __jhash_mix(a, b, c) { \
	a -= c;  a ^= rol32(c, 4);  c += b; \
	b -= a;  b ^= rol32(a, 6);  a += c; \
	c -= b;  c ^= rol32(b, 8);  b += a; \
	a -= c;  a ^= rol32(c, 16); c += b; \
	b -= a;  b ^= rol32(a, 19); a += c; \
	c -= b;  c ^= rol32(b, 4);  b += a; }
#define __jhash_final(a, b, c) { \
	c ^= b; c -= rol32(b, 14); \
	a ^= c; a -= rol32(c, 11); \
	b ^= a; b -= rol32(a, 25); \
	c ^= b; c -= rol32(b, 16); \
	a ^= c; a -= rol32(c, 4);  \
	b ^= a; b -= rol32(a, 14); \
	c ^= b; c -= rol32(b, 24); }
#define JHASH_INITVAL 0xdeadbeef
static inline u32 stp_get_unaligned_u32(const u8 *p)
{
	u32 v;

	memcpy(&v, p, 4);
	return v;
}
static inline u32 jhash(const void *key, u32 length, u32 initval)
{
	u32 a, b, c;
	const u8 *k = key;

	a = b = c = JHASH_INITVAL + length + initval;
	while (length > 12) {
		a += stp_get_unaligned_u32(k);
		b += stp_get_unaligned_u32(k + 4);
		c += stp_get_unaligned_u32(k + 8);
		__jhash_mix(a, b, c);
		length -= 12;
		k += 12;
	}
	switch (length) {
	case 12: c += (u32)k[11] << 24; fallthrough;
	case 11: c += (u32)k[10] << 16; fallthrough;
	case 10: c += (u32)k[9] << 8; fallthrough;
	case 9:  c += k[8]; fallthrough;
	case 8:  b += (u32)k[7] << 24; fallthrough;
	case 7:  b += (u32)k[6] << 16; fallthrough;
	case 6:  b += (u32)k[5] << 8; fallthrough;
	case 5:  b += k[4]; fallthrough;
	case 4:  a += (u32)k[3] << 24; fallthrough;
	case 3:  a += (u32)k[2] << 16; fallthrough;
	case 2:  a += (u32)k[1] << 8; fallthrough;
	case 1:  a += k[0];
		 __jhash_final(a, b, c);
		 break;
	case 0:
		break;
	}
	return c;
}
static inline u32 __jhash_nwords(u32 a, u32 b, u32 c, u32 initval)
{
	a += initval;
	b += initval;
	c += initval;
	__jhash_final(a, b, c);
	return c;
}
static inline u32 jhash_2words(u32 a, u32 b, u32 initval)
{
	return __jhash_nwords(a, b, 0, initval + JHASH_INITVAL + (2 << 2));
}
static inline u32 jhash_1word(u32 a, u32 initval)
{
	return __jhash_nwords(a, 0, 0, initval + JHASH_INITVAL + (1 << 2));
}

/* ---- time: real, or virtual when the main loop says so ---- */
static bool stp_user_virtual_time;
static u64 stp_user_vclock_ns;		/* virtual CLOCK_MONOTONIC */
static u64 stp_user_real_base_ns;	/* CLOCK_REALTIME at start */
static u64 stp_user_mono_base_ns;	/* CLOCK_MONOTONIC at start */

static inline u64 stp_user_clock(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (u64)ts.tv_sec * NSEC_PER_SEC + (u64)ts.tv_nsec;
}

static inline u64 ktime_get_ns(void)
{
	if (stp_user_virtual_time)
		return stp_user_mono_base_ns + stp_user_vclock_ns;
	return stp_user_clock(CLOCK_MONOTONIC);
}
static inline u64 ktime_get_real_ns(void)
{
	return stp_user_real_base_ns + (ktime_get_ns() - stp_user_mono_base_ns);
}
static inline u64 ktime_get_boottime_ns(void) { return ktime_get_ns(); }
static inline u64 local_clock(void) { return ktime_get_ns(); }
static inline u64 get_jiffies_64(void) { return ktime_get_ns() / (NSEC_PER_SEC / HZ); }
#define jiffies ((unsigned long)get_jiffies_64())
static inline ktime_t ns_to_ktime(u64 ns) { return ns; }
static inline u64 ktime_to_ns(ktime_t k) { return k; }

static inline u64 get_random_u64(void)
{
	u64 v = 0;

	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = (u64)rand() << 32 | (u64)rand();
	return v;
}
static inline u32 get_random_u32(void) { return (u32)get_random_u64(); }

/* ---- the current task: this process ---- */
struct task_struct {
	char comm[16];
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct task_struct *parent;
};
static struct task_struct stp_user_parent_task;
static struct task_struct stp_user_task;
#define current (&stp_user_task)
#define TASK_COMM_LEN 16
static inline int task_tgid_nr(const struct task_struct *t) { return t->tgid; }
static inline int task_pid_nr(const struct task_struct *t) { return t->pid; }
static inline int task_tgid_vnr(const struct task_struct *t) { return t->tgid; }
static inline int task_pid_vnr(const struct task_struct *t) { return t->pid; }
#define current_user_ns() NULL
#define current_uid() ((unsigned)getuid())
#define current_euid() ((unsigned)geteuid())
#define current_gid() ((unsigned)getgid())
#define current_egid() ((unsigned)getegid())
#define from_kuid_munged(ns, uid) ((void)(ns), (uid))
#define from_kgid_munged(ns, gid) ((void)(ns), (gid))
#define in_interrupt() 0
#define in_irq() 0

static void stp_user_task_init(void)
{
	char name[17] = "";

	prctl(PR_GET_NAME, name, 0, 0, 0);
	memcpy(stp_user_task.comm, name, sizeof(stp_user_task.comm));
	stp_user_task.comm[15] = '\0';
	stp_user_task.pid = (int)getpid();
	stp_user_task.tgid = (int)getpid();
	stp_user_parent_task.pid = stp_user_parent_task.tgid = (int)getppid();
	stp_user_task.real_parent = stp_user_task.parent = &stp_user_parent_task;
}

/* ---- probe plumbing types the shared headers mention ---- */
struct pt_regs { unsigned long di, si, dx, cx, r8, r9, ax, ip, sp; };
static inline unsigned long regs_return_value(struct pt_regs *r) { return r->ax; }
struct kretprobe_instance;
struct kprobe { const char *symbol_name; unsigned long offset; };
struct kretprobe { struct kprobe kp; int maxactive; };
struct hrtimer { u64 expires; };	/* the user main loop keeps the deadline here */

#endif /* STP_USER_KERNEL_H */
