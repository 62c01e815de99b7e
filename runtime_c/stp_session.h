/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_session.h - session state and the global error/skip/drop counters.
 *
 * The state is one atomic so that every probe can test it cheaply on entry;
 * transitions that race with probes use cmpxchg so that a later, stronger
 * state (ERROR, STOPPED) is never overwritten by a weaker one.
 */
#ifndef STP_SESSION_H
#define STP_SESSION_H

#ifndef STP_USER
#include <linux/atomic.h>
#endif

static atomic_t stp_session_state = ATOMIC_INIT(STP_SESSION_UNINITIALIZED);
static atomic_t stp_exit_requested = ATOMIC_INIT(0);

/* Runtime errors reported by handlers (last_error set at probe exit). */
static atomic_t stp_error_count = ATOMIC_INIT(0);
/* Probes not run: lock contention plus reentrancy (SystemTap counts both). */
static atomic_t stp_skipped_count = ATOMIC_INIT(0);
/* The subset of stp_skipped_count caused by reentrancy. */
static atomic_t stp_skipped_reentrant = ATOMIC_INIT(0);
/* Output records that did not fit in the ring (or lost the lock race). */
static atomic_t stp_dropped_count = ATOMIC_INIT(0);

static inline int stp_session_get(void)
{
	return atomic_read(&stp_session_state);
}

static inline void stp_session_set(int state)
{
	atomic_set(&stp_session_state, state);
}

/* Move from @old to @new only if still in @old; true when it happened. */
static inline bool stp_session_cmpxchg(int old, int new)
{
	return atomic_cmpxchg(&stp_session_state, old, new) == old;
}

/*
 * exit(): ask user space to stop us and make probes stop firing now. Only
 * STARTING/RUNNING move to STOPPING, so an ERROR state is kept (error
 * probes, not end probes, must run then).
 */
static inline void stp_request_exit(void)
{
	atomic_set(&stp_exit_requested, 1);
	if (!stp_session_cmpxchg(STP_SESSION_STARTING, STP_SESSION_STOPPING))
		stp_session_cmpxchg(STP_SESSION_RUNNING, STP_SESSION_STOPPING);
}

/* A fatal condition: stop firing probes, run error probes at stop. */
static inline void stp_session_fail(void)
{
	atomic_set(&stp_exit_requested, 1);
	if (!stp_session_cmpxchg(STP_SESSION_STARTING, STP_SESSION_ERROR) &&
	    !stp_session_cmpxchg(STP_SESSION_RUNNING, STP_SESSION_ERROR))
		stp_session_cmpxchg(STP_SESSION_STOPPING, STP_SESSION_ERROR);
}

static inline const char *stp_session_name(int state)
{
	switch (state) {
	case STP_SESSION_STARTING:
		return "starting";
	case STP_SESSION_RUNNING:
		return "running";
	case STP_SESSION_ERROR:
		return "error";
	case STP_SESSION_STOPPING:
		return "stopping";
	case STP_SESSION_STOPPED:
		return "stopped";
	default:
		return "uninitialized";
	}
}

#endif /* STP_SESSION_H */
