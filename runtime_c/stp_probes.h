/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_probes.h - kprobe, kretprobe and hrtimer glue: the kernel callbacks
 * that run generated handlers, and arming/disarming of the probe tables.
 */
#ifndef STP_PROBES_H
#define STP_PROBES_H

#ifdef STP_USER
#include "user/stp_user_probes.h"
#else
#include <linux/random.h>
#include <linux/ktime.h>
#include <linux/slab.h>

/* nofault reads for $target chains, @cast and kernel_string() */
#include "stp_deref.h"
/* kernel.trace probes: armed with the kprobes, disarmed first */
#include "stp_tracepoint.h"
#include <asm/irq_regs.h>
/* procfs("path") files */
#include "stp_procfs.h"
/* process("PATH") uprobes: armed after the tracepoints, disarmed first */
#include "stp_uprobes.h"

/* Floor for timer periods, so that a tiny interval cannot livelock a CPU. */
#ifndef STP_MIN_TIMER_NS
#define STP_MIN_TIMER_NS 1000ULL
#endif

static int stp_kprobe_pre(struct kprobe *kp, struct pt_regs *regs)
{
	struct stp_kprobe_desc *d = container_of(kp, struct stp_kprobe_desc,
						 kp);
	struct stp_context *c;

	c = stp_probe_enter(d->probe, STP_SESSION_RUNNING, regs);
	if (!c)
		return 0;
	d->probe->fn(c);
	stp_probe_exit(c);
	return 0;
}

/*
 * A .callee probe sits on the callee's entry, where the return address is
 * on top of the stack: run the handler only for calls made from the caller.
 */
static int stp_kprobe_pre_caller(struct kprobe *kp, struct pt_regs *regs)
{
	struct stp_kprobe_desc *d = container_of(kp, struct stp_kprobe_desc,
						 kp);
	unsigned long *sp = (unsigned long *)kernel_stack_pointer(regs);
	unsigned long ret;

	if (get_kernel_nofault(ret, sp))
		return 0;
	ret -= d->anchor - d->anchor_link;
	if (ret < d->caller_lo || ret >= d->caller_hi)
		return 0;
	return d->pre ? d->pre(kp, regs) : stp_kprobe_pre(kp, regs);
}

static int stp_kretprobe_handler(struct kretprobe_instance *ri,
				 struct pt_regs *regs)
{
	struct kretprobe *rp = get_kretprobe(ri);
	struct stp_kprobe_desc *d;
	struct stp_context *c;

	if (unlikely(!rp))	/* being unregistered */
		return 0;
	d = container_of(rp, struct stp_kprobe_desc, rp);
	c = stp_probe_enter(d->probe, STP_SESSION_RUNNING, regs);
	if (!c)
		return 0;
	c->ri = ri;
	d->probe->fn(c);
	stp_probe_exit(c);
	return 0;
}

/*
 * Entry half of a .return probe that reads values at entry: runs the
 * generated entry handler, which saves them in ri->data.  Returning 1
 * makes the kernel drop this instance, so a skipped or failed entry never
 * leaves the return handler reading unsaved data.
 */
static int stp_kretprobe_entry(struct kretprobe_instance *ri,
			       struct pt_regs *regs)
{
	struct kretprobe *rp = get_kretprobe(ri);
	struct stp_kprobe_desc *d;
	struct stp_context *c;
	bool failed;

	if (unlikely(!rp))
		return 1;
	d = container_of(rp, struct stp_kprobe_desc, rp);
	c = stp_probe_enter(d->entry, STP_SESSION_RUNNING, regs);
	if (!c)
		return 1;
	c->ri = ri;
	d->entry->fn(c);
	failed = c->last_error != NULL;
	stp_probe_exit(c);
	return failed ? 1 : 0;
}

/*
 * Next period: interval_ns, moved by a random amount in
 * [-randomize_ns, +randomize_ns] as SystemTap's .randomize(M) does.
 */
static u64 stp_timer_period(const struct stp_timer_desc *t)
{
	u64 ns = t->interval_ns;

	if (t->randomize_ns) {
		u64 span = 2 * t->randomize_ns + 1, rem;

		div64_u64_rem(get_random_u64(), span, &rem);
		ns = ns + rem > t->randomize_ns ? ns + rem - t->randomize_ns :
			0;
	}
	return max_t(u64, ns, STP_MIN_TIMER_NS);
}

static enum hrtimer_restart stp_hrtimer_fn(struct hrtimer *timer)
{
	struct stp_timer_desc *t = container_of(timer, struct stp_timer_desc,
						timer);
	struct stp_context *c;

	if (stp_session_get() != STP_SESSION_RUNNING)
		return HRTIMER_NORESTART;
	c = stp_probe_enter(t->probe, STP_SESSION_RUNNING, NULL);
	if (c) {
		t->probe->fn(c);
		stp_probe_exit(c);
	}
	if (stp_session_get() != STP_SESSION_RUNNING)
		return HRTIMER_NORESTART;
	hrtimer_forward_now(timer, ns_to_ktime(stp_timer_period(t)));
	return HRTIMER_RESTART;
}

/*
 * Register every kprobe of @m in order. A required probe that fails fails
 * the session (probes already registered are removed by stp_disarm).
 */
static void stp_arm_kprobes(struct stp_module_desc *m)
{
	int i, rc;

	for (i = 0; i < m->nkprobes; i++) {
		struct stp_kprobe_desc *d = &m->kprobes[i];

		if (stp_session_get() != STP_SESSION_RUNNING)
			return;
		d->registered = false;
		if (d->is_return) {
			memset(&d->rp, 0, sizeof(d->rp));
			d->rp.kp.symbol_name = d->symbol;
			d->rp.kp.offset = d->offset;
			d->rp.handler = d->ret ? d->ret : stp_kretprobe_handler;
			if (d->entry) {
				d->rp.entry_handler = stp_kretprobe_entry;
				d->rp.data_size = d->data_size;
			}
			d->rp.maxactive = d->maxactive > 0 ? d->maxactive :
				KRETACTIVE;
			rc = register_kretprobe(&d->rp);
		} else {
			memset(&d->kp, 0, sizeof(d->kp));
			d->kp.symbol_name = d->symbol;
			d->kp.offset = d->offset;
			if (d->caller_hi)
				d->kp.pre_handler = stp_kprobe_pre_caller;
			else
				d->kp.pre_handler = d->pre ? d->pre : stp_kprobe_pre;
			rc = register_kprobe(&d->kp);
		}
		if (rc == 0) {
			d->registered = true;
		} else if (!d->optional) {
			stp_warn("probe %s registration error [man warning::pass5] (rc %d)",
				 d->probe->pp, rc);
			stp_session_fail();
			return;
		}
	}
	stp_arm_tracepoints(m);
	stp_arm_uprobes(m);
	if (stp_session_get() == STP_SESSION_RUNNING)
		stp_arm_procs(m);
}

/*
 * timer.profile: a timer pinned to each CPU, firing every tick there. Its
 * handler sees the interrupted registers, as a profiling tick does.
 */
static enum hrtimer_restart stp_cpu_hrtimer_fn(struct hrtimer *timer)
{
	struct stp_cpu_timer *ct = container_of(timer, struct stp_cpu_timer,
						timer);
	struct stp_timer_desc *t = ct->t;
	struct stp_context *c;

	if (stp_session_get() != STP_SESSION_RUNNING)
		return HRTIMER_NORESTART;
	c = stp_probe_enter(t->probe, STP_SESSION_RUNNING, get_irq_regs());
	if (c) {
		t->probe->fn(c);
		stp_probe_exit(c);
	}
	if (stp_session_get() != STP_SESSION_RUNNING)
		return HRTIMER_NORESTART;
	hrtimer_forward_now(timer, ns_to_ktime(t->interval_ns));
	return HRTIMER_RESTART;
}

static void stp_start_cpu_timer(void *arg)
{
	struct stp_timer_desc *t = arg;
	struct stp_cpu_timer *ct = this_cpu_ptr(t->cpu_timers);

	hrtimer_init(&ct->timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_PINNED);
	ct->timer.function = stp_cpu_hrtimer_fn;
	ct->t = t;
	hrtimer_start(&ct->timer, ns_to_ktime(t->interval_ns),
		      HRTIMER_MODE_REL_PINNED);
}

static void stp_arm_timers(struct stp_module_desc *m)
{
	int i;

	for (i = 0; i < m->ntimers; i++) {
		struct stp_timer_desc *t = &m->timers[i];

		if (t->per_cpu) {
			t->cpu_timers = alloc_percpu(struct stp_cpu_timer);
			if (!t->cpu_timers) {
				stp_warn("probe %s registration error [man warning::pass5] (rc %d)",
					 t->probe->pp, -ENOMEM);
				stp_session_fail();
				return;
			}
			t->armed = true;
			on_each_cpu(stp_start_cpu_timer, t, 1);
			continue;
		}
		hrtimer_init(&t->timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL);
		t->timer.function = stp_hrtimer_fn;
		t->armed = true;
		hrtimer_start(&t->timer, ns_to_ktime(stp_timer_period(t)),
			      HRTIMER_MODE_REL);
	}
}

/*
 * Cancel timers and unregister kprobes. Batched unregistration pays for
 * one RCU grace period instead of one per probe; if the pointer arrays
 * cannot be allocated we fall back to one at a time. On return no handler
 * of ours is running or can start.
 */
static void stp_disarm(struct stp_module_desc *m)
{
	struct kprobe **kps = NULL;
	struct kretprobe **rps = NULL;
	int i, nk = 0, nr = 0;

	stp_disarm_procs(m);
	stp_disarm_uprobes(m);
	stp_disarm_tracepoints(m);
	for (i = 0; i < m->ntimers; i++) {
		struct stp_timer_desc *t = &m->timers[i];
		int cpu;

		if (!t->armed)
			continue;
		if (t->per_cpu) {
			for_each_possible_cpu(cpu) {
				struct stp_cpu_timer *ct = per_cpu_ptr(t->cpu_timers, cpu);

				if (ct->t)	/* started on that CPU */
					hrtimer_cancel(&ct->timer);
			}
			free_percpu(t->cpu_timers);
			t->cpu_timers = NULL;
		} else {
			hrtimer_cancel(&t->timer);
		}
		t->armed = false;
	}
	stp_disarm_procfs(m);
	if (!m->nkprobes)
		return;
	kps = kcalloc(m->nkprobes, sizeof(*kps), GFP_KERNEL);
	rps = kcalloc(m->nkprobes, sizeof(*rps), GFP_KERNEL);
	for (i = 0; i < m->nkprobes; i++) {
		struct stp_kprobe_desc *d = &m->kprobes[i];

		if (!d->registered)
			continue;
		if (d->is_return) {
			if (rps)
				rps[nr++] = &d->rp;
			else
				unregister_kretprobe(&d->rp);
		} else {
			if (kps)
				kps[nk++] = &d->kp;
			else
				unregister_kprobe(&d->kp);
		}
		d->registered = false;
	}
	if (nk)
		unregister_kprobes(kps, nk);
	if (nr)
		unregister_kretprobes(rps, nr);
	kfree(kps);
	kfree(rps);
}

#endif /* !STP_USER */
#endif /* STP_PROBES_H */
