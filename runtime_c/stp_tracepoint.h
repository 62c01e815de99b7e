/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_tracepoint.h - kernel.trace("sys:name") probes.
 *
 * Tracepoints are found by name with for_each_kernel_tracepoint() (their
 * struct tracepoint is not exported) and armed with
 * tracepoint_probe_register(). One trampoline serves every tracepoint: it
 * takes the TP_PROTO arguments as ten u64s (x86-64 passes the first six in
 * registers and the rest on the stack, so a shorter prototype just leaves
 * the extra ones unused) and publishes them to the handler, which reads
 * argument i as stp_tp_arg(i) and narrows it to its type.
 */
#ifndef STP_TRACEPOINT_H
#define STP_TRACEPOINT_H

#include <linux/tracepoint.h>

#define STP_TP_MAXARGS 10

struct stp_tp_desc {
	const struct stp_probe_desc *probe;
	const char *name;		/* "sched_switch" */
	bool optional;
	/* runtime-owned */
	struct tracepoint *tp;
	bool registered;
};

/* The running tracepoint handler's arguments, per CPU (preemption is off). */
static DEFINE_PER_CPU(const u64 *, stp_tp_argv);

static __maybe_unused u64 stp_tp_arg(int i)
{
	const u64 *argv = __this_cpu_read(stp_tp_argv);

	return argv && i < STP_TP_MAXARGS ? argv[i] : 0;
}

static __maybe_unused void stp_tp_probe(void *data, u64 a1, u64 a2, u64 a3,
					u64 a4, u64 a5, u64 a6, u64 a7,
					u64 a8, u64 a9, u64 a10)
{
	struct stp_tp_desc *d = data;
	u64 argv[STP_TP_MAXARGS] = { a1, a2, a3, a4, a5, a6, a7, a8, a9, a10 };
	struct stp_context *c;

	c = stp_probe_enter(d->probe, STP_SESSION_RUNNING, NULL);
	if (!c)
		return;
	__this_cpu_write(stp_tp_argv, argv);
	d->probe->fn(c);
	__this_cpu_write(stp_tp_argv, NULL);
	stp_probe_exit(c);
}

static void stp_tp_find(struct tracepoint *tp, void *priv)
{
	struct stp_module_desc *m = priv;
	int i;

	for (i = 0; i < m->ntracepoints; i++)
		if (!m->tracepoints[i].tp && !strcmp(tp->name, m->tracepoints[i].name))
			m->tracepoints[i].tp = tp;
}

static __maybe_unused void stp_arm_tracepoints(struct stp_module_desc *m)
{
	int i, rc;

	if (!m->ntracepoints)
		return;
	for_each_kernel_tracepoint(stp_tp_find, m);
	for (i = 0; i < m->ntracepoints; i++) {
		struct stp_tp_desc *d = &m->tracepoints[i];

		if (stp_session_get() != STP_SESSION_RUNNING)
			return;
		rc = d->tp ? tracepoint_probe_register(d->tp, (void *)stp_tp_probe, d) :
			-ENOENT;
		if (rc == 0) {
			d->registered = true;
		} else if (!d->optional) {
			stp_warn("probe %s registration error [man warning::pass5] (rc %d)",
				 d->probe->pp, rc);
			stp_session_fail();
			return;
		}
	}
}

static __maybe_unused void stp_disarm_tracepoints(struct stp_module_desc *m)
{
	int i, n = 0;

	for (i = 0; i < m->ntracepoints; i++) {
		struct stp_tp_desc *d = &m->tracepoints[i];

		if (!d->registered)
			continue;
		tracepoint_probe_unregister(d->tp, (void *)stp_tp_probe, d);
		d->registered = false;
		n++;
	}
	/* No handler of ours runs once this returns. */
	if (n)
		tracepoint_synchronize_unregister();
}

#endif /* STP_TRACEPOINT_H */
