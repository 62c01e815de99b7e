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
static atomic_t stp_skip_reported = ATOMIC_INIT(0);

static void stp_contexts_free(void)
{
	int cpu;

	if (!stp_contexts)
		return;
	for_each_possible_cpu(cpu)
		vfree(stp_contexts[cpu]);
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

static __maybe_unused struct stp_context *
stp_probe_enter(const struct stp_probe_desc *p, int required_state,
		struct pt_regs *regs)
{
	struct stp_context *c;
	int i;

	if (atomic_read(&stp_session_state) != required_state)
		return NULL;
	preempt_disable();
	if (unlikely(!stp_contexts))
		goto out_enable;
	c = stp_contexts[smp_processor_id()];
	if (atomic_inc_return(&c->busy) != 1) {
		atomic_dec(&c->busy);
		atomic_inc(&stp_skipped_reentrant);
		atomic_inc(&stp_skipped_count);
		goto out_skipped;
	}
	for (i = 0; i < p->nlocks; i++) {
		if (!stp_lock_one(&p->locks[i])) {
			stp_unlock_globals(p, i);
			atomic_dec(&c->busy);
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
	return c;

out_skipped:
	preempt_enable();
	stp_check_skipped();
	return NULL;
out_enable:
	preempt_enable();
	return NULL;
}

static __maybe_unused void stp_probe_exit(struct stp_context *c)
{
	const struct stp_probe_desc *p = c->probe;

	stp_print_flush(c);
	if (unlikely(c->last_error)) {
		stp_softerror(c);
		if (atomic_inc_return(&stp_error_count) > MAXERRORS)
			stp_session_fail();
		c->last_error = NULL;
	}
	stp_unlock_globals(p, p->nlocks);
	c->probe = NULL;
	c->regs = NULL;
	c->ri = NULL;
	atomic_dec(&c->busy);
	preempt_enable();
	stp_check_skipped();
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
