/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_context.h - per-CPU probe contexts and the probe prologue/epilogue.
 *
 * A handler runs with preemption disabled on its CPU's context, which holds
 * its locals and print buffer. The busy flag turns reentry on the same CPU
 * (an hrtimer or a kprobe interrupting a handler) into a counted skip
 * instead of a corrupted context. Global locks are only ever trylocked, with
 * a bounded retry, so a probe can never deadlock the kernel.
 */
#ifndef STP_CONTEXT_H
#define STP_CONTEXT_H

#ifndef STP_USER
#include <linux/delay.h>
#include <linux/preempt.h>
#endif

static struct stp_context **stp_contexts;	/* nr_cpu_ids slots */
/* The same pointers, one per CPU: the hot path's lookup is one %gs load. */
#ifdef STP_USER
static struct stp_context *stp_ctx_ptr;
#define stp_this_context() (stp_ctx_ptr)
#define stp_set_context(cpu, c) ((void)(cpu), stp_ctx_ptr = (c))
#else
static DEFINE_PER_CPU(struct stp_context *, stp_ctx_ptr);
#define stp_this_context() this_cpu_read(stp_ctx_ptr)
#define stp_set_context(cpu, c) (per_cpu(stp_ctx_ptr, cpu) = (c))
#endif
static atomic_t stp_skip_reported = ATOMIC_INIT(0);

static void stp_contexts_free(void)
{
	int cpu;

	if (!stp_contexts)
		return;
	for_each_possible_cpu(cpu) {
		stp_set_context(cpu, NULL);
		vfree(stp_contexts[cpu]);
	}
	kfree(stp_contexts);
	stp_contexts = NULL;
}

static int stp_contexts_alloc(size_t size)
{
	int cpu;

	if (size < sizeof(struct stp_context))
		size = sizeof(struct stp_context);
	stp_contexts = kcalloc(nr_cpu_ids, sizeof(*stp_contexts), GFP_KERNEL);
	if (!stp_contexts)
		return -ENOMEM;
	for_each_possible_cpu(cpu) {
		stp_contexts[cpu] = vzalloc(size);
		if (!stp_contexts[cpu]) {
			stp_contexts_free();
			return -ENOMEM;
		}
		stp_set_context(cpu, stp_contexts[cpu]);
	}
	return 0;
}

/* Too many skipped probes: report once and fail the session. */
static void stp_check_skipped(void)
{
	if (likely(atomic_read(&stp_skipped_count) <= MAXSKIPPED))
		return;
	if (atomic_xchg(&stp_skip_reported, 1))
		return;
	stp_error("Skipped too many probes, check MAXSKIPPED or try again with stap -t for more details.");
	stp_session_fail();
}

static void stp_unlock_globals(const struct stp_probe_desc *p, int n)
{
	while (n-- > 0) {
		if (p->locks[n].write)
			write_unlock(p->locks[n].lock);
		else
			read_unlock(p->locks[n].lock);
	}
}

static bool stp_lock_one(const struct stp_lock_req *r)
{
	int tries;

	for (tries = 0; tries < MAXTRYLOCK; tries++) {
		if (r->write ? write_trylock(r->lock) : read_trylock(r->lock))
			return true;
		udelay(TRYLOCKDELAY);
	}
	return false;
}

static __always_inline __maybe_unused struct stp_context *
stp_probe_enter(const struct stp_probe_desc *p, int required_state,
		struct pt_regs *regs)
{
	struct stp_context *c;
	int i;

	if (atomic_read(&stp_session_state) != required_state)
		return NULL;
	preempt_disable();
	c = stp_this_context();
	if (unlikely(!c))
		goto out_enable;
	/*
	 * Only this CPU uses c, and preemption is off: the one race is an
	 * interrupt (or NMI) probe between the test and the set, and that
	 * one runs to completion before we go on. So plain loads and stores
	 * do, no atomic read-modify-write on the hot path.
	 */
	if (unlikely(atomic_read(&c->busy))) {
		atomic_inc(&stp_skipped_reentrant);
		/* SystemTap counts reentrancy as a skip only without INTERRUPTIBLE. */
		if (!INTERRUPTIBLE)
			atomic_inc(&stp_skipped_count);
		goto out_skipped;
	}
	atomic_set(&c->busy, 1);
	barrier();
	for (i = 0; i < p->nlocks; i++) {
		if (unlikely(!stp_lock_one(&p->locks[i]))) {
			stp_unlock_globals(p, i);
			barrier();
			atomic_set(&c->busy, 0);
			atomic_inc(&stp_skipped_count);
			goto out_skipped;
		}
	}
	c->probe = p;
	c->regs = regs;
	c->ri = NULL;
	c->last_error = NULL;
	c->last_stmt = NULL;
	c->nesting = 0;
	c->error_depth = 0;
	c->actionremaining = MAXACTION_INTERRUPTIBLE;
	c->out.len = 0;
#ifdef STP_TIMING
	c->timing_start = get_cycles();
#endif
	return c;

out_skipped:
	preempt_enable();
	stp_check_skipped();
	return NULL;
out_enable:
	preempt_enable();
	return NULL;
}

static __always_inline __maybe_unused void stp_probe_exit(struct stp_context *c)
{
	const struct stp_probe_desc *p = c->probe;

	stp_print_flush(c);
#ifdef STP_TIMING
	STP_TIMING_END(p->timing, c->timing_start);
#endif
	if (unlikely(c->last_error)) {
		stp_softerror(c);
		if (atomic_inc_return(&stp_error_count) > MAXERRORS)
			stp_session_fail();
		c->last_error = NULL;
	}
	stp_unlock_globals(p, p->nlocks);
	/* probe, regs and ri are set again by the next stp_probe_enter. */
	barrier();
	atomic_set(&c->busy, 0);
	preempt_enable();
}

/* Run one begin/end/error probe from process context. */
static void stp_run_probe(const struct stp_probe_desc *p, int required_state)
{
	struct stp_context *c = stp_probe_enter(p, required_state, NULL);

	if (!c)
		return;
	p->fn(c);
	stp_probe_exit(c);
}

#endif /* STP_CONTEXT_H */
