/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_user_probes.h - probe arming for the user-space build.
 *
 * There are no kprobes in a process: a script that needs one is refused
 * when the session starts. Timers are deadlines kept in the descriptor's
 * hrtimer stand-in; stp_user_main.h's loop fires the earliest one, on a
 * real or a virtual clock.
 */
#ifndef STP_USER_PROBES_H
#define STP_USER_PROBES_H

/* nofault reads (kernel_string() ...): process_vm_readv on ourselves. */
#include "stp_deref.h"
#include "stp_procfs.h"

#ifndef STP_MIN_TIMER_NS
#define STP_MIN_TIMER_NS 1000ULL
#endif

static u64 stp_timer_period(const struct stp_timer_desc *t)
{
	u64 ns = t->interval_ns;

	if (t->randomize_ns) {
		u64 span = 2 * t->randomize_ns + 1, rem;

		div64_u64_rem(get_random_u64(), span, &rem);
		ns = ns + rem > t->randomize_ns ? ns + rem - t->randomize_ns : 0;
	}
	return max_t(u64, ns, STP_MIN_TIMER_NS);
}

static void stp_arm_kprobes(struct stp_module_desc *m)
{
	int i;

	if (m->ntracepoints) {
		stp_warn("kernel.trace probes need a kernel: not registered (rc %d)",
			 -ENOSYS);
		stp_session_fail();
		return;
	}
	for (i = 0; i < m->nkprobes; i++) {
		if (m->kprobes[i].optional)
			continue;
		stp_warn("probe %s registration error [man warning::pass5] (rc %d)",
			 m->kprobes[i].probe->pp, -ENOSYS);
		stp_session_fail();
		return;
	}
}

/* procfs files need a kernel: refused like kprobes. */
static void stp_arm_procfs(struct stp_module_desc *m)
{
	if (!m->nprocfs)
		return;
	stp_warn("probe %s registration error [man warning::pass5] (rc %d)",
		 m->procfs[0].read ? m->procfs[0].read->pp : m->procfs[0].write->pp,
		 -ENOSYS);
	stp_session_fail();
}

static void stp_arm_timers(struct stp_module_desc *m)
{
	u64 now = ktime_get_ns();
	int i;

	for (i = 0; i < m->ntimers; i++) {
		struct stp_timer_desc *t = &m->timers[i];

		t->timer.expires = now + stp_timer_period(t);
		t->armed = true;
	}
}

static void stp_disarm(struct stp_module_desc *m)
{
	int i;

	for (i = 0; i < m->ntimers; i++)
		m->timers[i].armed = false;
}

/* The armed timer that fires next, or NULL. */
static struct stp_timer_desc *stp_user_next_timer(struct stp_module_desc *m)
{
	struct stp_timer_desc *best = NULL;
	int i;

	for (i = 0; i < m->ntimers; i++) {
		struct stp_timer_desc *t = &m->timers[i];

		if (t->armed && (!best || t->timer.expires < best->timer.expires))
			best = t;
	}
	return best;
}

/* Run @t's handler once and schedule its next expiry (hrtimer_forward). */
static void stp_user_fire_timer(struct stp_timer_desc *t)
{
	struct stp_context *c = stp_probe_enter(t->probe, STP_SESSION_RUNNING, NULL);

	if (c) {
		t->probe->fn(c);
		stp_probe_exit(c);
	}
	t->timer.expires += stp_timer_period(t);
}

#endif /* STP_USER_PROBES_H */
