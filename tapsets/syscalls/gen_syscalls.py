#!/usr/bin/env python3
"""Generate tapsets/syscalls/syscalls.stp: syscall.NAME and syscall.NAME.return.

    python tapsets/syscalls/gen_syscalls.py            # rewrite syscalls.stp
    python tapsets/syscalls/gen_syscalls.py --check VMLINUX...   # every entry point exists

On x86-64 every system call enters the kernel through a wrapper
``__x64_sys_NAME(const struct pt_regs *regs)``; the user's arguments are in
that pt_regs, in the order di, si, dx, r10, r8, r9. One table row per call
names its arguments and how each is typed and shown; the aliases give each
argument a variable of that name (strings: NAME is quoted text, NAME_uaddr
the user address), plus name, argstr (as strace shows the call), and in
.return, retval and retstr.
"""
from __future__ import annotations

import sys
from pathlib import Path

REGS = ["di", "si", "dx", "r10", "r8", "r9"]

# kind -> (value expression from raw register R, argstr format, argstr value)
# "str" args get NAME (quoted) and NAME_uaddr; the others one variable.
KINDS = {
    "int":   ("__sc_int32({r})", "%d", "{n}"),
    "uint":  ("__sc_uint32({r})", "%u", "{n}"),
    "long":  ("{r}", "%d", "{n}"),
    "ulong": ("{r}", "%u", "{n}"),
    "ptr":   ("{r}", "%p", "{n}"),
    "hex":   ("{r}", "0x%x", "{n}"),
    "oct":   ("__sc_uint32({r})", "%#o", "{n}"),
    "dfd":   ("__sc_int32({r})", "%s", "_dfd_str({n})"),
    "oflags": ("__sc_int32({r})", "%s", "_sys_open_flag_str({n})"),
    "sig":   ("__sc_int32({r})", "%s", "_signal_name({n})"),
    "str":   (None, "%s", "{n}"),
}

# name: [(variable, kind)], entry-point override (default __x64_sys_NAME)
T: dict[str, tuple[list[tuple[str, str]], str | None]] = {}


def sc(name: str, args: str = "", fn: str | None = None) -> None:
    parsed = []
    for a in args.split():
        v, _, k = a.partition(":")
        assert k in KINDS, (name, a)
        parsed.append((v, k))
    T[name] = (parsed, fn)


# files and descriptors
sc("read", "fd:int buf_uaddr:ptr count:ulong")
sc("write", "fd:int buf_uaddr:ptr count:ulong")
sc("pread", "fd:int buf_uaddr:ptr count:ulong offset:long", "__x64_sys_pread64")
sc("pwrite", "fd:int buf_uaddr:ptr count:ulong offset:long", "__x64_sys_pwrite64")
sc("readv", "fd:int vector_uaddr:ptr count:int")
sc("writev", "fd:int vector_uaddr:ptr count:int")
sc("open", "filename:str flags:oflags mode:oct")
sc("openat", "dfd:dfd filename:str flags:oflags mode:oct")
sc("creat", "pathname:str mode:oct")
sc("close", "fd:int")
sc("lseek", "fildes:int offset:long whence:int")
sc("dup", "oldfd:int")
sc("dup2", "oldfd:int newfd:int")
sc("dup3", "oldfd:int newfd:int flags:hex")
sc("pipe", "fildes_uaddr:ptr")
sc("pipe2", "fildes_uaddr:ptr flags:hex")
sc("fcntl", "fd:int cmd:int arg:long")
sc("flock", "fd:int operation:int")
sc("ioctl", "fd:int request:hex argp:ptr")
sc("fsync", "fd:int")
sc("fdatasync", "fd:int")
sc("sync")
sc("truncate", "path:str length:long")
sc("ftruncate", "fd:int length:long")
sc("fadvise64", "fd:int offset:long len:long advice:int")
sc("sendfile", "out_fd:int in_fd:int offset_uaddr:ptr count:ulong", "__x64_sys_sendfile64")
sc("getdents", "fd:int dirp_uaddr:ptr count:uint", "__x64_sys_getdents64")
# names and metadata
sc("stat", "filename:str buf_uaddr:ptr", "__x64_sys_newstat")
sc("lstat", "filename:str buf_uaddr:ptr", "__x64_sys_newlstat")
sc("fstat", "fd:int buf_uaddr:ptr", "__x64_sys_newfstat")
sc("newfstatat", "dirfd:dfd filename:str buf_uaddr:ptr flags:hex")
sc("statx", "dfd:dfd filename:str flags:hex mask:hex buf_uaddr:ptr")
sc("access", "pathname:str mode:int")
sc("faccessat", "dirfd:dfd pathname:str mode:int")
sc("faccessat2", "dirfd:dfd pathname:str mode:int flags:hex")
sc("getcwd", "buf_uaddr:ptr size:ulong")
sc("chdir", "path:str")
sc("fchdir", "fd:int")
sc("rename", "oldpath:str newpath:str")
sc("renameat", "olddfd:dfd oldpath:str newdfd:dfd newpath:str")
sc("renameat2", "olddfd:dfd oldpath:str newdfd:dfd newpath:str flags:hex")
sc("mkdir", "pathname:str mode:oct")
sc("mkdirat", "dirfd:dfd pathname:str mode:oct")
sc("rmdir", "pathname:str")
sc("link", "oldpath:str newpath:str")
sc("unlink", "pathname:str")
sc("unlinkat", "dfd:dfd pathname:str flag:hex")
sc("symlink", "oldpath:str newpath:str")
sc("readlink", "path:str buf_uaddr:ptr bufsiz:int")
sc("readlinkat", "dfd:dfd path:str buf_uaddr:ptr bufsiz:int")
sc("chmod", "path:str mode:oct")
sc("fchmod", "fildes:int mode:oct")
sc("fchmodat", "dirfd:dfd pathname:str mode:oct")
sc("chown", "path:str owner:int group:int")
sc("fchown", "fd:int owner:int group:int")
sc("umask", "mask:oct")
sc("utimensat", "dfd:dfd filename:str tsp_uaddr:ptr flags:hex")
sc("mount", "source:str target:str filesystemtype:str mountflags:hex data_uaddr:ptr")
sc("umount", "target:str flags:hex", "__x64_sys_umount")
sc("memfd_create", "uname:str flags:hex")
# memory
sc("mmap", "start:ptr len:ulong prot:hex flags:hex fd:int pgoffset:long")
sc("munmap", "start:ptr length:ulong")
sc("mprotect", "addr:ptr len:ulong prot:hex")
sc("mremap", "old_address:ptr old_size:ulong new_size:ulong flags:hex new_address:ptr")
sc("msync", "start:ptr length:ulong flags:hex")
sc("madvise", "start:ptr length:ulong advice:int")
sc("brk", "brk:ptr")
# processes
sc("clone", "clone_flags:hex newsp:ptr parent_tid_uaddr:ptr child_tid_uaddr:ptr tls:ptr")
sc("clone3", "uargs_uaddr:ptr size:ulong")
sc("fork")
sc("vfork")
sc("execve", "filename:str argv_uaddr:ptr envp_uaddr:ptr")
sc("execveat", "dirfd:dfd filename:str argv_uaddr:ptr envp_uaddr:ptr flags:hex")
sc("exit", "status:int")
sc("exit_group", "status:int")
sc("wait4", "pid:int status_uaddr:ptr options:hex rusage_uaddr:ptr")
sc("getpid")
sc("getppid")
sc("gettid")
sc("getuid")
sc("geteuid")
sc("getgid")
sc("getegid")
sc("setuid", "uid:int")
sc("setgid", "gid:int")
sc("setpgid", "pid:int pgid:int")
sc("getpgrp")
sc("setsid")
sc("getsid", "pid:int")
sc("prctl", "option:int arg2:ulong arg3:ulong arg4:ulong arg5:ulong")
sc("arch_prctl", "code:int addr:ptr")
sc("set_tid_address", "tidptr_uaddr:ptr")
sc("uname", "name_uaddr:ptr", "__x64_sys_newuname")
sc("getrlimit", "resource:int rlim_uaddr:ptr")
sc("prlimit64", "pid:int resource:int new_rlim_uaddr:ptr old_rlim_uaddr:ptr")
sc("getrusage", "who:int usage_uaddr:ptr")
sc("sysinfo", "info_uaddr:ptr")
sc("sched_yield")
sc("sched_setaffinity", "pid:int len:uint mask_uaddr:ptr")
sc("sched_getaffinity", "pid:int len:uint mask_uaddr:ptr")
sc("getrandom", "buf_uaddr:ptr count:ulong flags:hex")
# signals
sc("kill", "pid:int sig:sig")
sc("tkill", "pid:int sig:sig")
sc("tgkill", "tgid:int pid:int sig:sig")
sc("rt_sigaction", "sig:sig act_uaddr:ptr oact_uaddr:ptr sigsetsize:ulong")
sc("rt_sigprocmask", "how:int set_uaddr:ptr oldset_uaddr:ptr sigsetsize:ulong")
sc("rt_sigreturn")
sc("pause")
sc("alarm", "seconds:uint")
# time and waiting
sc("nanosleep", "req_uaddr:ptr rem_uaddr:ptr")
sc("clock_nanosleep", "which_clock:int flags:hex req_uaddr:ptr rem_uaddr:ptr")
sc("clock_gettime", "which_clock:int tp_uaddr:ptr")
sc("gettimeofday", "tv_uaddr:ptr tz_uaddr:ptr")
sc("futex", "futex_uaddr:ptr op:int val:int utime_uaddr:ptr uaddr2_uaddr:ptr val3:int")
sc("poll", "ufds_uaddr:ptr nfds:uint timeout:int")
sc("ppoll", "ufds_uaddr:ptr nfds:uint tsp_uaddr:ptr sigmask_uaddr:ptr sigsetsize:ulong")
sc("select", "n:int readfds_uaddr:ptr writefds_uaddr:ptr exceptfds_uaddr:ptr timeout_uaddr:ptr")
sc("pselect6", "n:int readfds_uaddr:ptr writefds_uaddr:ptr exceptfds_uaddr:ptr timeout_uaddr:ptr sigmask_uaddr:ptr")
sc("epoll_create1", "flags:hex")
sc("epoll_ctl", "epfd:int op:int fd:int event_uaddr:ptr")
sc("epoll_wait", "epfd:int events_uaddr:ptr maxevents:int timeout:int")
sc("epoll_pwait", "epfd:int events_uaddr:ptr maxevents:int timeout:int sigmask_uaddr:ptr sigsetsize:ulong")
sc("eventfd2", "count:uint flags:hex")
# sockets
sc("socket", "family:int type:int protocol:int")
sc("socketpair", "family:int type:int protocol:int sv_uaddr:ptr")
sc("connect", "sockfd:int serv_addr_uaddr:ptr addrlen:int")
sc("accept", "sockfd:int addr_uaddr:ptr addrlen_uaddr:ptr")
sc("accept4", "sockfd:int addr_uaddr:ptr addrlen_uaddr:ptr flags:hex")
sc("bind", "sockfd:int my_addr_uaddr:ptr addrlen:int")
sc("listen", "sockfd:int backlog:int")
sc("shutdown", "s:int how:int")
sc("getsockname", "s:int name_uaddr:ptr namelen_uaddr:ptr")
sc("getpeername", "s:int name_uaddr:ptr namelen_uaddr:ptr")
sc("sendto", "s:int buf_uaddr:ptr len:ulong flags:hex to_uaddr:ptr tolen:int")
sc("recvfrom", "s:int buf_uaddr:ptr len:ulong flags:hex addr_uaddr:ptr addrlen_uaddr:ptr")
sc("sendmsg", "s:int msg_uaddr:ptr flags:hex")
sc("recvmsg", "s:int msg_uaddr:ptr flags:hex")
sc("setsockopt", "fd:int level:int optname:int optval_uaddr:ptr optlen:int")
sc("getsockopt", "fd:int level:int optname:int optval_uaddr:ptr optlen_uaddr:ptr")

NO_RETURN = {"exit", "exit_group"}

HEADER = """\
// GENERATED by tapsets/syscalls/gen_syscalls.py from its table; edit the
// table there and rerun it, not this file.
//
// syscall.NAME / syscall.NAME.return for {n} system calls (x86-64).  Every
// call enters the kernel through __x64_sys_NAME(const struct pt_regs *regs);
// its arguments are read from regs in the order di, si, dx, r10, r8, r9.
//
// Entry variables: name, argstr (the arguments as strace shows them) and
// one variable per argument, named as in SystemTap's tapsets; a string
// argument NAME is the quoted text and NAME_uaddr its user address.
// Return variables: name, retval, retstr ("-2 (ENOENT)" for errors).
"""


def entry(name: str, args: list[tuple[str, str]], fn: str) -> str:
    lines = [f'probe syscall.{name} = kernel.function("{fn}") ?', "{", f'\tname = "{name}"']
    fmts, vals = [], []
    for i, (v, k) in enumerate(args):
        reg = f"$regs->{REGS[i]}"
        expr, fmt, val = KINDS[k]
        if k == "str":
            base = v
            lines.append(f"\t{base}_uaddr = {reg}")
            lines.append(f"\t{base} = user_string_quoted({base}_uaddr)")
            lines.append(f"\t{base}_unquoted = user_string({base}_uaddr, \"\")")
        else:
            lines.append(f"\t{v} = {expr.format(r=reg)}")
        fmts.append(fmt)
        vals.append(val.format(n=v))
    if args:
        lines.append(f'\targstr = sprintf("{", ".join(fmts)}", {", ".join(vals)})')
    else:
        lines.append('\targstr = ""')
    lines.append("}")
    return "\n".join(lines)


def ret(name: str, fn: str) -> str:
    return "\n".join([
        f'probe syscall.{name}.return = kernel.function("{fn}").return ?', "{",
        f'\tname = "{name}"', "\tretval = $return", "\tretstr = return_str(1, retval)", "}"])


def render() -> str:
    out = [HEADER.format(n=len(T))]
    for name, (args, fn) in T.items():
        fn = fn or f"__x64_sys_{name}"
        out.append(f"/** syscall.{name}: {', '.join(v for v, _ in args) or 'no arguments'} */")
        out.append(entry(name, args, fn))
        if name not in NO_RETURN:
            out.append(ret(name, fn))
        out.append("")
    return "\n".join(out)


def check(vmlinux: list[str]) -> int:
    """Every entry point exists (and is probeable) in each kernel."""
    import subprocess
    fns = sorted({fn or f"__x64_sys_{name}" for name, (_, fn) in T.items()})
    bad = 0
    for v in vmlinux:
        res = subprocess.run([sys.executable, "-m", "codegen.debuginfo", v, *fns],
                             capture_output=True, text=True)
        for line in (res.stdout + res.stderr).splitlines():
            if not line.startswith("kernel.function("):
                print(f"{v}: {line}")
                bad += 1
    return 1 if bad else 0


def render_table(unistd: Path) -> str:
    """syscall_name(nr) from the x86-64 numbers in asm/unistd_64.h."""
    import re
    nums = {}
    for m in re.finditer(r"#define __NR_(\w+)\s+(\d+)", unistd.read_text()):
        nums[int(m.group(2))] = m.group(1)
    rows = "\n".join(f'\t[{n}] = "{nums[n]}",' for n in sorted(nums))
    return TABLE.format(rows=rows, n=len(nums))


TABLE = """\
// GENERATED by tapsets/syscalls/gen_syscalls.py from asm/unistd_64.h
// (the x86-64 system call numbers, {n} of them).

%{{
static const char *const stp_syscall_names[] = {{
{rows}
}};
%}}

/** syscall_name - the name of x86-64 system call number nr ("sys_NR" if unknown) */
function syscall_name:string(nr:long) %{{ /* pure */
	if (STAP_ARG_nr >= 0 && STAP_ARG_nr < (stp_long)ARRAY_SIZE(stp_syscall_names) &&
	    stp_syscall_names[STAP_ARG_nr])
		stp_strlcpy(STAP_RETVALUE, stp_syscall_names[STAP_ARG_nr]);
	else
		snprintf(STAP_RETVALUE, MAXSTRINGLEN, "sys_%lld", (long long)STAP_ARG_nr);
%}}
"""


if __name__ == "__main__":
    if sys.argv[1:2] == ["--check"]:
        sys.exit(check(sys.argv[2:]))
    here = Path(__file__).parent
    (here / "syscalls.stp").write_text(render())
    unistd = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
    if unistd.exists():
        (here / "syscall_table.stp").write_text(render_table(unistd))
    print(f"{len(T)} syscalls")
