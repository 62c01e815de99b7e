/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_uprobes.h - process("PATH").function(...) probes: inode uprobes and
 * uretprobes, and nofault reads of the probed process's memory.
 *
 * A uprobe is registered on (inode, file offset); pass 2 computed the
 * offset from the ELF, the inode is looked up here by path when the
 * session starts. The kernel puts the breakpoint into every mapping of
 * that file, present and future, so a program started after "start" is
 * probed too. Handlers run in the probed task's context, with that task's
 * user registers; stp_probe_enter disables preemption, so user memory is
 * only ever read with copy_from_user_nofault (a page that is not resident
 * is a script error, never a sleep or an oops).
 *
 * API differences:
 *   6.1:  int uprobe_register(inode, off, uc), uprobe_register_refctr(),
 *         void uprobe_unregister(inode, off, uc), synchronous;
 *   6.12: struct uprobe *uprobe_register(inode, off, ref_ctr_off, uc),
 *         uprobe_unregister_nosync(up, uc) then one uprobe_unregister_sync().
 */
#ifndef STP_UPROBES_H
#define STP_UPROBES_H

#include <linux/uprobes.h>
#include <linux/namei.h>
#include <linux/fs.h>
#include <linux/mm_types.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
#define STP_UPROBE_HANDLE 1
#else
#define STP_UPROBE_HANDLE 0
#endif

struct stp_uprobe_desc {
	const struct stp_probe_desc *probe;
	const char *path;		/* file that holds the code */
	loff_t offset;			/* file offset of the probed instruction */
	loff_t ref_ctr_offset;		/* SDT semaphore, 0 = none */
	/* Only fire in processes running this executable (NULL = any). */
	const char *exe_path;
	bool is_return;
	bool optional;
	/* runtime-owned */
	struct uprobe_consumer uc;
	struct inode *inode;
	struct inode *exe_inode;
#if STP_UPROBE_HANDLE
	struct uprobe *up;
#endif
	bool registered;
};

/* ---- user memory for $target chains ---- */

static __maybe_unused bool stp_utarget_fault(struct stp_context *c, u64 addr)
{
	STP_ERRORF(c, "user read fault at 0x%016llx", (unsigned long long)addr);
	return false;
}

/* *out = the @size-byte user integer at @addr, sign- or zero-extended. */
static __maybe_unused bool stp_utarget_read(struct stp_context *c, u64 addr,
					    int size, bool is_signed,
					    stp_long *out)
{
	union { u8 b; u16 h; u32 w; u64 q; s8 sb; s16 sh; s32 sw; } v;

	v.q = 0;
	if (addr < PAGE_SIZE ||
	    copy_from_user_nofault(&v, (const void __user *)(uintptr_t)addr,
				   size))
		return stp_utarget_fault(c, addr);
	switch (size) {
	case 1: *out = is_signed ? (stp_long)v.sb : (stp_long)v.b; break;
	case 2: *out = is_signed ? (stp_long)v.sh : (stp_long)v.h; break;
	case 4: *out = is_signed ? (stp_long)v.sw : (stp_long)v.w; break;
	default: *out = (stp_long)v.q; break;
	}
	return true;
}

/* A user bitfield: @nbytes at @addr, shifted right by @shift, @bits wide. */
static __maybe_unused bool stp_utarget_read_bits(struct stp_context *c,
						 u64 addr, int nbytes,
						 int shift, int bits,
						 bool is_signed,
						 stp_long *out)
{
	u64 v = 0;

	if (addr < PAGE_SIZE ||
	    copy_from_user_nofault(&v, (const void __user *)(uintptr_t)addr,
				   nbytes))
		return stp_utarget_fault(c, addr);
	*out = stp_bits_extract(v, shift, bits, is_signed);
	return true;
}

/*
 * The NUL-terminated user string at @addr into @dst (at most @max bytes
 * with the NUL), a page piece at a time ($$parms$ of a char *).
 */
static __maybe_unused bool stp_utarget_string(struct stp_context *c, char *dst,
					      u64 addr, long max)
{
	long done = 0;

	if (max <= 0 || max > MAXSTRINGLEN)
		max = MAXSTRINGLEN;
	dst[0] = '\0';
	if (addr < PAGE_SIZE)
		return stp_utarget_fault(c, addr);
	while (done < max - 1) {
		u64 at = addr + done;
		long chunk = min_t(long, max - 1 - done,
				   PAGE_SIZE - (at & (PAGE_SIZE - 1)));

		if (copy_from_user_nofault(dst + done,
					   (const void __user *)(uintptr_t)at,
					   chunk)) {
			dst[done] = '\0';
			return stp_utarget_fault(c, at);
		}
		if (memchr(dst + done, '\0', chunk))
			return true;
		done += chunk;
	}
	dst[max - 1] = '\0';
	return true;
}

/* ---- handlers ---- */

/*
 * Is the current task running the executable @want (NULL: any)? By
 * superblock and inode number, not by pointer: 9p without a cache can
 * give one file several struct inodes.
 */
static bool stp_current_exe_is(const struct inode *want)
{
	struct mm_struct *mm = current->mm;
	struct file *exe;
	bool ok;

	if (!want)
		return true;
	if (!mm)
		return false;
	rcu_read_lock();
	exe = rcu_dereference(mm->exe_file);
	ok = exe && file_inode(exe)->i_sb == want->i_sb &&
		file_inode(exe)->i_ino == want->i_ino;
	rcu_read_unlock();
	return ok;
}

static int stp_uprobe_handler(struct uprobe_consumer *uc, struct pt_regs *regs)
{
	struct stp_uprobe_desc *d = container_of(uc, struct stp_uprobe_desc, uc);
	struct stp_context *c;

	if (!stp_current_exe_is(d->exe_inode))
		return 0;
	c = stp_probe_enter(d->probe, STP_SESSION_RUNNING, regs);
	if (!c)
		return 0;
	d->probe->fn(c);
	stp_probe_exit(c);
	return 0;
}

static int stp_uretprobe_handler(struct uprobe_consumer *uc,
				 unsigned long func, struct pt_regs *regs)
{
	return stp_uprobe_handler(uc, regs);
}

/* ---- arming ---- */

/*
 * The inode behind @path (a reference the caller drops with iput). On an
 * overlay (the guests' /tmp) the code is mapped from the real, lower
 * inode, which is what a uprobe is registered on (@real), while execve's
 * mm->exe_file is the overlay's file, which the exe filter compares with.
 */
static struct inode *stp_uprobe_inode(const char *path, bool real, int *rc)
{
	struct path p;
	struct inode *inode;

	*rc = kern_path(path, LOOKUP_FOLLOW, &p);
	if (*rc)
		return NULL;
	inode = igrab(real ? d_real_inode(p.dentry) : d_inode(p.dentry));
	path_put(&p);
	if (!inode)
		*rc = -ENOENT;
	return inode;
}

static int stp_uprobe_register_one(struct stp_uprobe_desc *d)
{
	int rc;

	d->inode = stp_uprobe_inode(d->path, true, &rc);
	if (!d->inode)
		return rc;
	if (d->exe_path) {
		d->exe_inode = stp_uprobe_inode(d->exe_path, false, &rc);
		if (!d->exe_inode)
			goto fail;
	}
	memset(&d->uc, 0, sizeof(d->uc));
	if (d->is_return)
		d->uc.ret_handler = stp_uretprobe_handler;
	else
		d->uc.handler = stp_uprobe_handler;
#if STP_UPROBE_HANDLE
	d->up = uprobe_register(d->inode, d->offset, d->ref_ctr_offset, &d->uc);
	rc = IS_ERR(d->up) ? PTR_ERR(d->up) : 0;
	if (rc)
		d->up = NULL;
#else
	rc = d->ref_ctr_offset ?
		uprobe_register_refctr(d->inode, d->offset, d->ref_ctr_offset,
				       &d->uc) :
		uprobe_register(d->inode, d->offset, &d->uc);
#endif
	if (rc == 0)
		return 0;
fail:
	if (d->exe_inode)
		iput(d->exe_inode);
	d->exe_inode = NULL;
	iput(d->inode);
	d->inode = NULL;
	return rc;
}

static __maybe_unused void stp_arm_uprobes(struct stp_module_desc *m)
{
	int i, rc;

	for (i = 0; i < m->nuprobes; i++) {
		struct stp_uprobe_desc *d = &m->uprobes[i];

		if (stp_session_get() != STP_SESSION_RUNNING)
			return;
		rc = stp_uprobe_register_one(d);
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

/* On return no uprobe handler of ours runs or can start. */
static __maybe_unused void stp_disarm_uprobes(struct stp_module_desc *m)
{
	int i, n = 0;

	for (i = 0; i < m->nuprobes; i++) {
		struct stp_uprobe_desc *d = &m->uprobes[i];

		if (!d->registered)
			continue;
#if STP_UPROBE_HANDLE
		uprobe_unregister_nosync(d->up, &d->uc);
#else
		uprobe_unregister(d->inode, d->offset, &d->uc);
#endif
		n++;
	}
#if STP_UPROBE_HANDLE
	if (n)
		uprobe_unregister_sync();
#endif
	for (i = 0; i < m->nuprobes; i++) {
		struct stp_uprobe_desc *d = &m->uprobes[i];

		if (!d->registered)
			continue;
		if (d->exe_inode)
			iput(d->exe_inode);
		iput(d->inode);
		d->exe_inode = NULL;
		d->inode = NULL;
		d->registered = false;
	}
}

/*
 * ---- process.begin / .end / .thread.begin / .thread.end ----
 *
 * begin: a kretprobe on schedule_tail(), the first kernel function a new
 * task runs (from ret_from_fork), so the handler runs in the *new* task
 * and pid()/execname() describe it, as in SystemTap; at its return the
 * runqueue lock is released. process("PATH").begin also fires when a
 * task execs PATH (sched_process_exec, in the exec'ing task).
 * end: the sched_process_exit tracepoint, in the exiting task; the last
 * live thread of a group is the process's end, the others thread ends.
 * syscall[.return]: the raw_syscalls sys_enter/sys_exit tracepoints, in
 * the calling task, with its user registers as the probe's registers.
 * Kernel threads are never reported.
 */
enum {
	STP_PROC_BEGIN,
	STP_PROC_END,
	STP_PROC_THREAD_BEGIN,
	STP_PROC_THREAD_END,
	STP_PROC_SYSCALL,		/* raw_syscalls:sys_enter */
	STP_PROC_SYSCALL_RETURN,	/* raw_syscalls:sys_exit */
};

/*
 * process.syscall: the running handler's system call number and return
 * value ($syscall, $return); $argN are read from its user registers.
 */
static DEFINE_PER_CPU(long, stp_sc_nr);
static DEFINE_PER_CPU(long, stp_sc_ret);

static __maybe_unused long stp_syscall_nr(void)
{
	return __this_cpu_read(stp_sc_nr);
}

static __maybe_unused long stp_syscall_ret(void)
{
	return __this_cpu_read(stp_sc_ret);
}

struct stp_proc_desc {
	const struct stp_probe_desc *probe;
	const char *exe_path;		/* process("PATH").begin, else NULL */
	int kind;
	/* runtime-owned */
	struct inode *exe_inode;
};

static struct stp_module_desc *stp_proc_module;
static struct kretprobe stp_proc_rp;
static bool stp_proc_rp_registered;
static struct tracepoint *stp_proc_tp_exec, *stp_proc_tp_exit;
static bool stp_proc_exec_registered, stp_proc_exit_registered;
static struct tracepoint *stp_proc_tp_sys_enter, *stp_proc_tp_sys_exit;
static bool stp_proc_sys_enter_registered, stp_proc_sys_exit_registered;

static void stp_proc_fire_regs(int kind, bool at_exec, struct pt_regs *regs,
			       long nr, long ret)
{
	struct stp_module_desc *m = READ_ONCE(stp_proc_module);
	int i;

	if (!m || (current->flags & PF_KTHREAD))
		return;
	for (i = 0; i < m->nprocs; i++) {
		const struct stp_proc_desc *d = &m->procs[i];
		struct stp_context *c;

		if (d->kind != kind || (at_exec && !d->exe_inode))
			continue;
		if (!stp_current_exe_is(d->exe_inode))
			continue;
		c = stp_probe_enter(d->probe, STP_SESSION_RUNNING, regs);
		if (!c)
			continue;
		/* preemption is off from here to stp_probe_exit */
		__this_cpu_write(stp_sc_nr, nr);
		__this_cpu_write(stp_sc_ret, ret);
		d->probe->fn(c);
		stp_probe_exit(c);
	}
}

static void stp_proc_fire(int kind, bool at_exec)
{
	stp_proc_fire_regs(kind, at_exec, NULL, 0, 0);
}

static void stp_proc_sys_enter(void *data, struct pt_regs *regs, long id)
{
	stp_proc_fire_regs(STP_PROC_SYSCALL, false, regs, id, 0);
}

static void stp_proc_sys_exit(void *data, struct pt_regs *regs, long ret)
{
	stp_proc_fire_regs(STP_PROC_SYSCALL_RETURN, false, regs,
			   regs->orig_ax, ret);
}

static int stp_proc_fork_ret(struct kretprobe_instance *ri,
			     struct pt_regs *regs)
{
	stp_proc_fire(thread_group_leader(current) ? STP_PROC_BEGIN :
		      STP_PROC_THREAD_BEGIN, false);
	return 0;
}

static void stp_proc_exec(void *data, struct task_struct *p, pid_t old_pid,
			  struct linux_binprm *bprm)
{
	stp_proc_fire(STP_PROC_BEGIN, true);
}

static void stp_proc_exit(void *data, struct task_struct *p)
{
	/* do_exit() has already taken this thread off signal->live. */
	stp_proc_fire(atomic_read(&current->signal->live) == 0 ?
		      STP_PROC_END : STP_PROC_THREAD_END, false);
}

static void stp_proc_find_tp(struct tracepoint *tp, void *priv)
{
	if (!strcmp(tp->name, "sched_process_exec"))
		stp_proc_tp_exec = tp;
	else if (!strcmp(tp->name, "sched_process_exit"))
		stp_proc_tp_exit = tp;
	else if (!strcmp(tp->name, "sys_enter"))
		stp_proc_tp_sys_enter = tp;
	else if (!strcmp(tp->name, "sys_exit"))
		stp_proc_tp_sys_exit = tp;
}

static __maybe_unused void stp_arm_procs(struct stp_module_desc *m)
{
	bool begin = false, exec = false, end = false, sys = false,
		sysret = false;
	int i, rc = 0;

	if (!m->nprocs)
		return;
	for (i = 0; i < m->nprocs; i++) {
		struct stp_proc_desc *d = &m->procs[i];

		if (d->exe_path) {
			d->exe_inode = stp_uprobe_inode(d->exe_path, false, &rc);
			if (!d->exe_inode) {
				stp_warn("probe %s registration error [man warning::pass5] (rc %d)",
					 d->probe->pp, rc);
				goto fail;
			}
			exec = true;
		}
		if (d->kind == STP_PROC_BEGIN || d->kind == STP_PROC_THREAD_BEGIN)
			begin = true;
		else if (d->kind == STP_PROC_SYSCALL)
			sys = true;
		else if (d->kind == STP_PROC_SYSCALL_RETURN)
			sysret = true;
		else
			end = true;
	}
	WRITE_ONCE(stp_proc_module, m);
	for_each_kernel_tracepoint(stp_proc_find_tp, NULL);
	if (begin) {
		memset(&stp_proc_rp, 0, sizeof(stp_proc_rp));
		stp_proc_rp.kp.symbol_name = "schedule_tail";
		stp_proc_rp.handler = stp_proc_fork_ret;
		/* one instance per task between fork and its first return */
		stp_proc_rp.maxactive = 4 * num_possible_cpus() + 16;
		rc = register_kretprobe(&stp_proc_rp);
		if (rc)
			goto warn;
		stp_proc_rp_registered = true;
	}
	if (exec) {
		rc = stp_proc_tp_exec ?
			tracepoint_probe_register(stp_proc_tp_exec,
						  (void *)stp_proc_exec, NULL) :
			-ENOENT;
		if (rc)
			goto warn;
		stp_proc_exec_registered = true;
	}
	if (end) {
		rc = stp_proc_tp_exit ?
			tracepoint_probe_register(stp_proc_tp_exit,
						  (void *)stp_proc_exit, NULL) :
			-ENOENT;
		if (rc)
			goto warn;
		stp_proc_exit_registered = true;
	}
	if (sys) {
		rc = stp_proc_tp_sys_enter ?
			tracepoint_probe_register(stp_proc_tp_sys_enter,
						  (void *)stp_proc_sys_enter, NULL) :
			-ENOENT;
		if (rc)
			goto warn;
		stp_proc_sys_enter_registered = true;
	}
	if (sysret) {
		rc = stp_proc_tp_sys_exit ?
			tracepoint_probe_register(stp_proc_tp_sys_exit,
						  (void *)stp_proc_sys_exit, NULL) :
			-ENOENT;
		if (rc)
			goto warn;
		stp_proc_sys_exit_registered = true;
	}
	return;
warn:
	stp_warn("probe %s registration error [man warning::pass5] (rc %d)",
		 m->procs[0].probe->pp, rc);
fail:
	stp_session_fail();
}

/* On return no lifecycle handler of ours runs or can start. */
static __maybe_unused void stp_disarm_procs(struct stp_module_desc *m)
{
	int i;
	bool tp = stp_proc_exec_registered || stp_proc_exit_registered ||
		stp_proc_sys_enter_registered || stp_proc_sys_exit_registered;

	if (stp_proc_exec_registered)
		tracepoint_probe_unregister(stp_proc_tp_exec,
					    (void *)stp_proc_exec, NULL);
	if (stp_proc_exit_registered)
		tracepoint_probe_unregister(stp_proc_tp_exit,
					    (void *)stp_proc_exit, NULL);
	if (stp_proc_sys_enter_registered)
		tracepoint_probe_unregister(stp_proc_tp_sys_enter,
					    (void *)stp_proc_sys_enter, NULL);
	if (stp_proc_sys_exit_registered)
		tracepoint_probe_unregister(stp_proc_tp_sys_exit,
					    (void *)stp_proc_sys_exit, NULL);
	stp_proc_exec_registered = false;
	stp_proc_exit_registered = false;
	stp_proc_sys_enter_registered = false;
	stp_proc_sys_exit_registered = false;
	if (tp)
		tracepoint_synchronize_unregister();
	if (stp_proc_rp_registered)
		unregister_kretprobe(&stp_proc_rp);
	stp_proc_rp_registered = false;
	WRITE_ONCE(stp_proc_module, NULL);
	for (i = 0; i < m->nprocs; i++) {
		if (m->procs[i].exe_inode)
			iput(m->procs[i].exe_inode);
		m->procs[i].exe_inode = NULL;
	}
}

#endif /* STP_UPROBES_H */
