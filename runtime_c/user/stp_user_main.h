/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_user_main.h - main() of the user-space build: what the module's
 * init/exit, its /proc control files and stapbuild.runner do in the kernel
 * build, done by one process.
 *
 *   prog [-T SECONDS] [--virtual-time]
 *
 * begin probes run, then timers fire until exit(), an error, SIGINT/SIGTERM
 * or -T; then end probes (or error probes) run and the summary is printed.
 * Script output goes to stdout, WARNING:/ERROR: lines to stderr, exactly
 * as stapbuild.runner relays them; the exit status is 1 when an "ERROR: "
 * line was printed (stapio's rule), else 0.
 *
 * With --virtual-time the clock only moves when the loop advances it to the
 * next timer, so timer probes run back to back; -T then counts virtual
 * seconds, and with no -T and no timer the run stops right after the begin
 * probes (nothing else could ever happen).
 */
#ifndef STP_USER_MAIN_H
#define STP_USER_MAIN_H

static volatile sig_atomic_t stp_user_signalled;
static bool stp_user_saw_error;
static char stp_user_errline[64];	/* start of the current stderr line */
static size_t stp_user_errline_len;

static void stp_user_on_signal(int sig)
{
	(void)sig;
	stp_user_signalled = 1;
}

static void stp_user_write(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

/* stapio's rule: any stderr line starting "ERROR: " fails the run. */
static void stp_user_scan_stderr(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] == '\n') {
			stp_user_errline_len = 0;
			continue;
		}
		if (stp_user_errline_len < sizeof(stp_user_errline))
			stp_user_errline[stp_user_errline_len] = p[i];
		stp_user_errline_len++;
		if (stp_user_errline_len == 7 && !memcmp(stp_user_errline, "ERROR: ", 7))
			stp_user_saw_error = true;
	}
}

/* Relay every record in the ring, as stapbuild.runner does. */
static void stp_user_drain(void)
{
	static char *buf;
	ssize_t got;

	if (!buf)
		buf = malloc(STP_READ_CHUNK);
	if (!buf)
		return;
	while ((got = stp_output_read(buf, STP_READ_CHUNK)) > 0) {
		size_t pos = 0;

		while (pos + sizeof(struct stp_record_hdr) <= (size_t)got) {
			struct stp_record_hdr hdr;
			const char *payload;

			memcpy(&hdr, buf + pos, sizeof(hdr));
			payload = buf + pos + sizeof(hdr);
			if (hdr.channel == STP_CHAN_STDERR) {
				stp_user_write(2, payload, hdr.len);
				stp_user_scan_stderr(payload, hdr.len);
			} else {
				stp_user_write(1, payload, hdr.len);
			}
			pos += sizeof(hdr) + hdr.len;
		}
	}
}

static void stp_user_sleep_until(u64 deadline)
{
	for (;;) {
		u64 now = ktime_get_ns();
		struct timespec ts;
		u64 d;

		if (now >= deadline || stp_user_signalled)
			return;
		d = deadline - now;
		if (d > 50 * 1000 * 1000ULL)
			d = 50 * 1000 * 1000ULL;	/* stay responsive to signals */
		ts.tv_sec = d / NSEC_PER_SEC;
		ts.tv_nsec = d % NSEC_PER_SEC;
		nanosleep(&ts, NULL);
	}
}

static bool stp_user_running(void)
{
	return !stp_user_signalled && !atomic_read(&stp_exit_requested) &&
	       stp_session_get() == STP_SESSION_RUNNING;
}

static void stp_user_stop(void)
{
	int st = stp_session_get();
	int i, errors, skipped, dropped;

	stp_session_cmpxchg(STP_SESSION_RUNNING, STP_SESSION_STOPPING);
	stp_disarm(&stp_module);
	if (st != STP_SESSION_STARTING) {
		for (i = 0; i < stp_module.nend; i++) {
			stp_run_probe(&stp_module.end[i], STP_SESSION_STOPPING);
			stp_user_drain();
		}
		for (i = 0; i < stp_module.nerror; i++) {
			stp_run_probe(&stp_module.error[i], STP_SESSION_ERROR);
			stp_user_drain();
		}
	}
	errors = atomic_read(&stp_error_count);
	skipped = atomic_read(&stp_skipped_count);
	if (errors || skipped)
		stp_warn("Number of errors: %d, skipped probes: %d", errors, skipped);
	dropped = atomic_read(&stp_dropped_count);
	if (dropped)
		stp_warn("There were %d transport failures.", dropped);
	stp_session_set(STP_SESSION_STOPPED);
	stp_user_drain();
}

int main(int argc, char **argv)
{
	double seconds = -1;
	u64 deadline = 0;
	int i, rc;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--virtual-time")) {
			stp_user_virtual_time = true;
		} else if (!strcmp(argv[i], "-T") && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else {
			fprintf(stderr, "usage: %s [-T SECONDS] [--virtual-time]\n", argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	signal(SIGINT, stp_user_on_signal);
	signal(SIGTERM, stp_user_on_signal);
	signal(SIGPIPE, SIG_IGN);
	stp_user_real_base_ns = stp_user_clock(CLOCK_REALTIME);
	stp_user_mono_base_ns = stp_user_clock(CLOCK_MONOTONIC);
	stp_user_task_init();

	rc = stp_contexts_alloc(stp_module.context_size);
	if (!rc)
		rc = stp_output_init();
	if (!rc && stp_module.init_globals)
		rc = stp_module.init_globals();
	if (rc) {
		fprintf(stderr, "ERROR: cannot allocate the session (%d)\n", rc);
		return 1;
	}
	stp_session_set(STP_SESSION_STARTING);

	for (i = 0; i < stp_module.nbegin; i++) {
		stp_run_probe(&stp_module.begin[i], STP_SESSION_STARTING);
		stp_user_drain();
	}
	if (stp_session_cmpxchg(STP_SESSION_STARTING, STP_SESSION_RUNNING)) {
		stp_arm_kprobes(&stp_module);
		if (stp_session_get() == STP_SESSION_RUNNING)
			stp_arm_timers(&stp_module);
		if (stp_session_get() == STP_SESSION_RUNNING)
			stp_arm_procfs(&stp_module);
		stp_user_drain();
	}
	if (seconds >= 0)
		deadline = ktime_get_ns() + (u64)(seconds * 1e9);

	while (stp_user_running()) {
		struct stp_timer_desc *t = stp_user_next_timer(&stp_module);
		u64 due;

		if (!t) {
			/* Nothing can fire: wait for -T or a signal (real time). */
			if (stp_user_virtual_time || seconds < 0) {
				if (stp_user_virtual_time)
					break;
				pause();
				continue;
			}
			stp_user_sleep_until(deadline);
			break;
		}
		due = t->timer.expires;
		if (seconds >= 0 && due > deadline) {
			if (stp_user_virtual_time)
				stp_user_vclock_ns = deadline - stp_user_mono_base_ns;
			else
				stp_user_sleep_until(deadline);
			break;
		}
		if (stp_user_virtual_time) {
			if (due > ktime_get_ns())
				stp_user_vclock_ns = due - stp_user_mono_base_ns;
		} else {
			stp_user_sleep_until(due);
			if (stp_user_signalled)
				break;
		}
		stp_user_fire_timer(t);
		if (!stp_user_virtual_time && t->timer.expires < ktime_get_ns())
			t->timer.expires = ktime_get_ns() + stp_timer_period(t);
		stp_user_drain();
	}
	stp_user_stop();
	if (stp_module.free_globals)
		stp_module.free_globals();
	stp_output_free();
	stp_contexts_free();
	return stp_user_saw_error ? 1 : 0;
}

#endif /* STP_USER_MAIN_H */
