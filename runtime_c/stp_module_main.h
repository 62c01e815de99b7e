/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_module_main.h - module init/exit and the /proc control interface.
 *
 * Included last by generated code, after it has defined
 * "static struct stp_module_desc stp_module". Loading the module only
 * allocates; nothing runs or is armed until user space writes "start" to
 * ctl. "stop" (or module unload) disarms, runs end/error probes and emits
 * the summary. See stp_runtime.h for the protocol.
 */
#ifndef STP_MODULE_MAIN_H
#define STP_MODULE_MAIN_H

#ifdef STP_USER
#include "user/stp_user_main.h"
#else
#include <linux/init.h>
#include <linux/proc_fs.h>
#include <linux/fs.h>

#define STP_PROC_DIR "stapbuild-" KBUILD_MODNAME

static struct proc_dir_entry *stp_proc_dir;
/* Serialises start/stop against each other and against module exit. */
static DEFINE_MUTEX(stp_ctl_mutex);
static bool stp_started;
static bool stp_dying;

static void stp_do_start(void)
{
	int i;

	if (stp_started || stp_session_get() != STP_SESSION_STARTING)
		return;
	stp_started = true;
	for (i = 0; i < stp_module.nbegin; i++)
		stp_run_probe(&stp_module.begin[i], STP_SESSION_STARTING);
	/* exit() or an error in a begin probe: arm nothing. */
	if (!stp_session_cmpxchg(STP_SESSION_STARTING, STP_SESSION_RUNNING))
		return;
	stp_arm_kprobes(&stp_module);
	if (stp_session_get() == STP_SESSION_RUNNING)
		stp_arm_timers(&stp_module);
	if (stp_session_get() == STP_SESSION_RUNNING)
		stp_arm_procfs(&stp_module);
}

static void stp_do_stop(void)
{
	int st = stp_session_get();
	int i, errors, skipped, dropped;

	if (st == STP_SESSION_STOPPED || st == STP_SESSION_UNINITIALIZED)
		return;
	if (st == STP_SESSION_STARTING) {
		/* Never started: no begin probe ran, so no end probe runs. */
		stp_session_set(STP_SESSION_STOPPED);
		return;
	}
	/* RUNNING -> STOPPING; STOPPING and ERROR are kept as they are. */
	stp_session_cmpxchg(STP_SESSION_RUNNING, STP_SESSION_STOPPING);
	stp_disarm(&stp_module);

	/*
	 * Each probe is gated by its required state: end probes only run
	 * while STOPPING (not after an error), error probes only in ERROR
	 * (including an error raised by an end probe).
	 */
	for (i = 0; i < stp_module.nend; i++)
		stp_run_probe(&stp_module.end[i], STP_SESSION_STOPPING);
	for (i = 0; i < stp_module.nerror; i++)
		stp_run_probe(&stp_module.error[i], STP_SESSION_ERROR);
#ifdef STP_TIMING
	stpg_timing_report();	/* generated: stap -t's probe hit report */
#endif

	errors = atomic_read(&stp_error_count);
	skipped = atomic_read(&stp_skipped_count);
	if (errors || skipped)
		stp_warn("Number of errors: %d, skipped probes: %d",
			 errors, skipped);
	dropped = atomic_read(&stp_dropped_count);
	if (dropped)
		stp_warn("There were %d transport failures.", dropped);
	stp_session_set(STP_SESSION_STOPPED);
}

static ssize_t stp_ctl_read(struct file *file, char __user *ubuf,
			    size_t count, loff_t *ppos)
{
	char buf[192];
	int n;

	n = scnprintf(buf, sizeof(buf),
		      "state=%s\nexit_requested=%d\nerrors=%d\nskipped=%d\ndropped=%d\n",
		      stp_session_name(stp_session_get()),
		      atomic_read(&stp_exit_requested),
		      atomic_read(&stp_error_count),
		      atomic_read(&stp_skipped_count),
		      atomic_read(&stp_dropped_count));
	return simple_read_from_buffer(ubuf, count, ppos, buf, n);
}

static ssize_t stp_ctl_write(struct file *file, const char __user *ubuf,
			     size_t count, loff_t *ppos)
{
	char cmd[16];
	char *s;
	ssize_t ret = count;

	if (count == 0 || count >= sizeof(cmd))
		return -EINVAL;
	if (copy_from_user(cmd, ubuf, count))
		return -EFAULT;
	cmd[count] = '\0';
	s = strim(cmd);

	mutex_lock(&stp_ctl_mutex);
	if (stp_dying)
		ret = -ENODEV;
	else if (!strcmp(s, "start"))
		stp_do_start();
	else if (!strcmp(s, "stop"))
		stp_do_stop();
	else
		ret = -EINVAL;
	mutex_unlock(&stp_ctl_mutex);
	return ret;
}

static ssize_t stp_data_read(struct file *file, char __user *ubuf,
			     size_t count, loff_t *ppos)
{
	return stp_output_read(ubuf, count);
}

static const struct proc_ops stp_ctl_ops = {
	.proc_read = stp_ctl_read,
	.proc_write = stp_ctl_write,
	.proc_lseek = default_llseek,
};

static const struct proc_ops stp_data_ops = {
	.proc_read = stp_data_read,
	.proc_lseek = noop_llseek,
};

static void stp_cleanup(void)
{
	proc_remove(stp_proc_dir);	/* waits for in-flight ctl/data ops */
	stp_proc_dir = NULL;
	if (stp_module.free_globals)
		stp_module.free_globals();
	stp_output_free();
	stp_contexts_free();
}

static int __init stp_module_init(void)
{
	int rc;

	rc = stp_contexts_alloc(stp_module.context_size);
	if (rc)
		goto fail;
	rc = stp_output_init();
	if (rc)
		goto fail;
	/* free_globals must cope with a partial init (frees accept NULL). */
	if (stp_module.init_globals) {
		rc = stp_module.init_globals();
		if (rc)
			goto fail;
	}
	rc = -ENOMEM;
	stp_proc_dir = proc_mkdir(STP_PROC_DIR, NULL);
	if (!stp_proc_dir)
		goto fail;
	if (!proc_create("ctl", 0600, stp_proc_dir, &stp_ctl_ops) ||
	    !proc_create("data", 0400, stp_proc_dir, &stp_data_ops))
		goto fail;
	stp_session_set(STP_SESSION_STARTING);
	return 0;
fail:
	stp_cleanup();
	return rc;
}

static void __exit stp_module_exit(void)
{
	/* Run end probes even when the reader vanished without "stop". */
	mutex_lock(&stp_ctl_mutex);
	stp_dying = true;
	stp_do_stop();
	mutex_unlock(&stp_ctl_mutex);
	stp_cleanup();
}

module_init(stp_module_init);
module_exit(stp_module_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("stapbuild probe module");

#endif /* !STP_USER */
#endif /* STP_MODULE_MAIN_H */
