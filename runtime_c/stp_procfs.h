/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_procfs.h - procfs("path").read / .write probes.
 *
 * Each path is a file /proc/systemtap/MODULE/path, as with SystemTap. A
 * read at offset 0 runs the .read probe, whose $value assignments fill the
 * file's buffer (MAXSTRINGLEN bytes, or .maxsize(N)); the reader gets that
 * text. Each write() runs the .write probe with $value = the bytes written
 * (cut to the buffer size). Probes run in the reader's process context, one
 * at a time per file (a mutex), with the usual probe prologue.
 */
#ifndef STP_PROCFS_H
#define STP_PROCFS_H

#ifndef STP_USER
#include <linux/proc_fs.h>
#include <linux/namei.h>
#include <linux/mutex.h>
#endif

/* ---- $value, used by generated code in both builds ---- */
static __maybe_unused const char *stp_procfs_value(struct stp_context *c)
{
	return c->procfs_value ? c->procfs_value : "";
}

static __maybe_unused void stp_procfs_set(struct stp_context *c, const char *v)
{
	size_t n = 0;

	if (!c->procfs_value || !c->procfs_size)
		return;
	while (n < c->procfs_size - 1 && v[n])
		n++;
	memmove(c->procfs_value, v, n);
	c->procfs_value[n] = '\0';
}

static __maybe_unused void stp_procfs_append(struct stp_context *c, const char *v)
{
	size_t len, n = 0;

	if (!c->procfs_value || !c->procfs_size)
		return;
	len = strnlen(c->procfs_value, c->procfs_size - 1);
	while (len + n < c->procfs_size - 1 && v[n])
		n++;
	memmove(c->procfs_value + len, v, n);
	c->procfs_value[len + n] = '\0';
}

#ifndef STP_USER
static struct proc_dir_entry *stp_procfs_parent;	/* /proc/systemtap */
static struct proc_dir_entry *stp_procfs_dir;		/* .../MODULE */

static void stp_procfs_run(struct stp_procfs_desc *d,
			   const struct stp_probe_desc *p)
{
	struct stp_context *c = stp_probe_enter(p, STP_SESSION_RUNNING, NULL);

	if (!c)
		return;
	c->procfs_value = d->buf;
	c->procfs_size = d->bufsize;
	p->fn(c);
	c->procfs_value = NULL;
	c->procfs_size = 0;
	stp_probe_exit(c);
}

static ssize_t stp_procfs_read(struct file *file, char __user *ubuf,
			       size_t count, loff_t *ppos)
{
	struct stp_procfs_desc *d = pde_data(file_inode(file));
	ssize_t ret;

	if (mutex_lock_interruptible(&d->lock))
		return -ERESTARTSYS;
	if (*ppos == 0) {
		d->buf[0] = '\0';
		if (d->read)
			stp_procfs_run(d, d->read);
		d->len = strnlen(d->buf, d->bufsize);
	}
	ret = simple_read_from_buffer(ubuf, count, ppos, d->buf, d->len);
	mutex_unlock(&d->lock);
	return ret;
}

static ssize_t stp_procfs_write(struct file *file, const char __user *ubuf,
				size_t count, loff_t *ppos)
{
	struct stp_procfs_desc *d = pde_data(file_inode(file));
	size_t n = min_t(size_t, count, d->bufsize - 1);

	if (mutex_lock_interruptible(&d->lock))
		return -ERESTARTSYS;
	if (copy_from_user(d->buf, ubuf, n)) {
		mutex_unlock(&d->lock);
		return -EFAULT;
	}
	d->buf[n] = '\0';
	if (d->write)
		stp_procfs_run(d, d->write);
	d->buf[0] = '\0';
	mutex_unlock(&d->lock);
	return count;
}

static const struct proc_ops stp_procfs_ops = {
	.proc_read = stp_procfs_read,
	.proc_write = stp_procfs_write,
	.proc_lseek = default_llseek,
};

/* "a/b/c": make a and a/b under @dir; return the entry to put c in. */
static struct proc_dir_entry *stp_procfs_subdirs(const char *path)
{
	char part[128];
	const char *slash;

	slash = strrchr(path, '/');
	if (!slash)
		return stp_procfs_dir;
	if ((size_t)(slash - path) >= sizeof(part))
		return NULL;
	memcpy(part, path, slash - path);
	part[slash - path] = '\0';
	return proc_mkdir(part, stp_procfs_dir);
}

static void stp_arm_procfs(struct stp_module_desc *m)
{
	struct path p;
	int i;

	if (!m->nprocfs)
		return;
	/* Look /proc/systemtap up first: creating an existing entry warns. */
	if (kern_path("/proc/systemtap", LOOKUP_DIRECTORY, &p) == 0) {
		path_put(&p);
		stp_procfs_dir = proc_mkdir("systemtap/" KBUILD_MODNAME, NULL);
	} else {
		stp_procfs_parent = proc_mkdir("systemtap", NULL);
		if (stp_procfs_parent)
			stp_procfs_dir = proc_mkdir(KBUILD_MODNAME, stp_procfs_parent);
	}
	if (!stp_procfs_dir)
		goto fail;
	for (i = 0; i < m->nprocfs; i++) {
		struct stp_procfs_desc *d = &m->procfs[i];
		struct proc_dir_entry *dir;
		const char *base = strrchr(d->path, '/');
		umode_t mode = (d->read ? 0444 : 0) | (d->write ? 0222 : 0);

		mutex_init(&d->lock);
		d->buf = vzalloc(d->bufsize);
		dir = stp_procfs_subdirs(d->path);
		if (!d->buf || !dir ||
		    !proc_create_data(base ? base + 1 : d->path, mode, dir,
				      &stp_procfs_ops, d))
			goto fail;
		d->created = true;
	}
	return;
fail:
	stp_warn("probe %s registration error [man warning::pass5] (rc %d)",
		 m->procfs[0].read ? m->procfs[0].read->pp : m->procfs[0].write->pp,
		 -ENOMEM);
	stp_session_fail();
}

static void stp_disarm_procfs(struct stp_module_desc *m)
{
	int i;

	/* Waits for readers and writers in progress. */
	proc_remove(stp_procfs_dir);
	stp_procfs_dir = NULL;
	if (stp_procfs_parent) {
		remove_proc_entry("systemtap", NULL);
		stp_procfs_parent = NULL;
	}
	for (i = 0; i < m->nprocfs; i++) {
		vfree(m->procfs[i].buf);
		m->procfs[i].buf = NULL;
		m->procfs[i].created = false;
	}
}
#endif /* !STP_USER */

#endif /* STP_PROCFS_H */
