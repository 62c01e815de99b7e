"""stap's command-line options in ``stapbuild``, passes 1-4 (no boot).

Each option is checked by what it changes: the resolved script, the C,
the build tree, the store. Options that need a running module are in
test_cli_options_boot.py. Every failure must be stap's message and a
non-zero exit, never a traceback.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

from stapbuild import launch, rcfile, run5
from stapbuild.cli import build_parser, check_options

ROOT = Path(__file__).resolve().parent.parent


def stapbuild(*args: str, env: Optional[dict[str, str]] = None,
              sysdir: Optional[Path] = None) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    # A developer's own ~/.systemtap/rc must not leak into the tests.
    e["SYSTEMTAP_DIR"] = str(sysdir or Path("/nonexistent-stapbuild-test-dir"))
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "stapbuild.cli", *args], cwd=ROOT, env=e,
                          capture_output=True, text=True, timeout=600)


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return r


def failed(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    return r.stderr


# ------------------------------------------------------------------ no kernel
def test_bad_values_are_stap_messages():
    cases = [
        (["-s", "0"], "Invalid buffer size (should be 1-4095)."),
        (["-s", "4096"], "Invalid buffer size (should be 1-4095)."),
        (["-s", "x"], "Invalid buffer size (should be 1-4095)."),
        (["-x", "12ab"], "Invalid target process ID number."),
        (["-c", "true", "-x", "1"], "You can't specify -c and -x together."),
        (["-c", ""], "Empty CMD string invalid."),
        (["-D", "1BAD"], "ERROR: Safety pattern mismatch for -D parameter ('1BAD' vs. "),
        (["-D", "X=a b"], "ERROR: Safety pattern mismatch for -D parameter ('X=a b' vs. "),
        (["-G", "x=a b"], "ERROR: Safety pattern mismatch for -G parameter ('x=a b' vs. "),
        (["-G", "novalue"], "ERROR: Safety pattern mismatch for -G parameter"),
        (["-m", "Bad-Name"], "ERROR: Safety pattern mismatch for -m parameter"),
        (["-p", "0"], "Invalid pass number (should be 1-5)."),
        (["-l", "begin", "--dump-functions"],
         "ERROR: only one of the -l/-L/--dump-* switches may be specified"),
        (["--no-such-option"], "stapbuild: unrecognized arguments: --no-such-option"),
        (["-k"], "ERROR: Safety pattern mismatch for TMPDIR"),
    ]
    for args, message in cases:
        env = {"TMPDIR": "/tmp/Bad Dir"} if args == ["-k"] else None
        r = stapbuild(*args, "-e", "probe begin { exit() }", env=env)
        assert r.returncode == 1, (args, r.stderr)
        assert "Traceback" not in r.stderr
        assert message in r.stderr, (args, r.stderr)


def test_version_and_help():
    r = ok(stapbuild("-V"))
    assert re.match(r"stapbuild \d+\.\d+", r.stdout)
    r = ok(stapbuild("--help"))
    for opt in ("-E SCRIPT", "-I DIR", "-R DIR", "-B NAME=VALUE", "-G VAR=VALUE", "--json",
                "--dump-probe-types", "--poison-cache"):
        assert opt in r.stdout, opt


def test_rcfile_words():
    assert rcfile.parse("-v  -D MAXACTION=5 # comment\n'-e' 'probe begin {}'") == \
        ["-v", "-D", "MAXACTION=5", "-e", "probe begin {}"]
    os.environ["STAPBUILD_RC_TEST"] = "abc"
    try:
        assert rcfile.parse("-DX=$STAPBUILD_RC_TEST") == ["-DX=abc"]
    finally:
        del os.environ["STAPBUILD_RC_TEST"]
    with pytest.raises(rcfile.RcError):
        rcfile.parse("-e $(rm -rf /)")
    with pytest.raises(rcfile.RcError):
        rcfile.parse("-e 'unterminated")


def test_strftime_output_names():
    when = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1))
    assert run5.expand_output_name("out-%Y%m%d-%H%M%S.txt", when) == "out-20260304-050607.txt"
    assert run5.expand_output_name("plain.txt", when) == "plain.txt"
    assert run5.expand_output_name("100%%-%d", when) == "100%-04"


def _run_options(argv: list[str]) -> run5.RunOptions:
    opts = build_parser().parse_args(argv)
    check_options(opts)
    return run5.RunOptions(workload=opts.command, duration=opts.timeout, output=opts.output,
                           target_pid=opts.target_pid, globals=opts.set_globals,
                           suppress_warnings=opts.no_warnings, json=opts.json)


def test_run_options_are_forwarded_to_the_guest():
    """What `stapbuild --guest` sends into the guest: the same run options,
    read back by run5's own parser; -o stays on the host (the guest cannot
    write there)."""
    import shlex
    opts = _run_options(["-x", "77", "-G", "n=5", "-G", "s=hi", "-w", "--json", "-T", "2.5",
                         "-o", "/tmp/x-%Y", "f.stp"])
    argv = shlex.split(launch.guest_command(Path("/tmp/m.ko"), opts))
    assert argv[1:5] == ["-S", "-m", "stapbuild.run5", "--module"]
    rest = argv[6:]
    assert "--output" not in rest
    import argparse
    ap = argparse.ArgumentParser()
    for flag in ("--workload", "--duration", "--target-pid"):
        ap.add_argument(flag)
    ap.add_argument("--global", action="append", default=[])
    ap.add_argument("--suppress-warnings", action="store_true")
    ap.add_argument("--json", action="store_true")
    got = ap.parse_args(rest)
    assert got.target_pid == "77" and got.duration == "2.5"
    assert got.__dict__["global"] == ["n=5", "s=hi"]
    assert got.suppress_warnings and got.json and got.workload is None
    opts = _run_options(["-c", "echo hi; sleep 1", "f.stp"])
    assert shlex.split(launch.guest_command(Path("/tmp/m.ko"), opts))[6:] == \
        ["--workload", "echo hi; sleep 1"]


def test_load_params_check_the_module(tmp_path):
    # A stand-in .modinfo: what the kernel's module loader reads the
    # parameter names from.
    ko = tmp_path / "m.ko"
    ko.write_bytes(b"\x7fELF....\0parmtype=stp_target:long\0parmtype=n:long\0parm=s:x\0"
                   b"parmtype=s:string\0")
    assert run5.module_parameters(ko.read_bytes()) == {"stp_target", "n", "s"}
    opts = run5.RunOptions(target_pid=9, globals=["n=3", "s=abc"])
    assert run5.load_params(ko, opts) == "stp_target=9 n=3 s=abc"
    with pytest.raises(run5.ParamError, match="global 'm' cannot be set with -G"):
        run5.load_params(ko, run5.RunOptions(globals=["m=1"]))
    with pytest.raises(run5.ParamError, match="Safety pattern mismatch"):
        run5.load_params(ko, run5.RunOptions(globals=["n=1 stp_target=2"]))
    # A module without target(): -x has nothing to set.
    ko.write_bytes(b"\0parmtype=n:long\0")
    assert run5.load_params(ko, run5.RunOptions(target_pid=9)) == ""


def test_dump_probe_types_and_exclusivity():
    r = ok(stapbuild("--dump-probe-types"))
    lines = r.stdout.splitlines()
    assert lines == sorted(lines)
    for t in ("begin", "kernel.function(string).return", "timer.ms(number)", "procfs(string).write"):
        assert t in lines


# ------------------------------------------------------------------ with a kernel
@pytest.mark.kernel
def test_every_dumped_probe_type_resolves_in_pass2(tmp_path):
    """Each line of --dump-probe-types, instantiated, goes through pass 2:
    the list never claims a form the elaborator refuses."""
    from codegen.debuginfo.elf_symbols import ElfImage, read_function_symbols
    from stapbuild import dumps, passes
    from tests.bootlib import ROOT, resolve
    kctx = passes.kernel_context(resolve("6.1"))
    # User-space forms need programs: one with DWARF, one with SDT notes.
    demo, sdt = tmp_path / "demo", tmp_path / "sdt"
    subprocess.run(["gcc", "-g", "-o", str(demo), str(ROOT / "tests/c/uprobe_demo.c")], check=True)
    subprocess.run(["gcc", "-g", "-O2", "-o", str(sdt), str(ROOT / "tests/c/uprobe_sdt.c")],
                   check=True)
    loop_line = (ROOT / "tests/c/uprobe_demo.c").read_text().splitlines().index(
        "\t\ttotal += add(i, 10 * i);") + 1
    user = {"process(string).library(string).function(string)":
            'process("/bin/true").library("libc.so.6").function("malloc")',
            "process(string).plt(string)": 'process("/bin/true").plt("*")',
            "process(string).provider(string).mark(string)":
            f'process("{sdt}").provider("demo").mark("tick")',
            "process(string).mark(string)": f'process("{sdt}").mark("tick")',
            "process(string).function(string)": f'process("{demo}").function("add")',
            "process(string).statement(string)":
            f'process("{demo}").statement("main@uprobe_demo.c:{loop_line}")',
            "process(string)": 'process("/bin/true")'}
    with ElfImage(kctx.kernel.vmlinux) as img:
        ((addr, _),) = read_function_symbols(img).lookup("vfs_read")
    samples = {"kernel.function": '"vfs_read"', "kernel.trace": '"sched:sched_switch"',
               "kprobe.function": '"vfs_read"', "kprobe.module": '"ext4"',
               "procfs": '"stapbuild_dump_test"'}
    probes = []
    for t in dumps.PROBE_TYPES:
        text = t
        for form, value in user.items():
            text = text.replace(form, value)
        for family, value in samples.items():
            text = text.replace(f"{family}(string)", f"{family}({value})")
        text = text.replace("kprobe.module(\"ext4\").function(string)",
                            'kprobe.module("ext4").function("ext4_file_open")')
        text = text.replace("kernel.function(number)", f"kernel.function({addr:#x})")
        # vfs_read is not exported; kernel_read is
        text = text.replace('kernel.function("vfs_read").exported',
                            'kernel.function("kernel_read").exported')
        # The smallest timer period is 100 us.
        text = re.sub(r"^timer\.(ns|nsec)\(number\)", r"timer.\1(100000)", text)
        text = text.replace("(number)", "(100)")
        assert "(string)" not in text, t
        probes.append(f"probe {text} {{ }}\n")
    parsed = passes.parse_pass(None, "".join(probes), kctx, name="dump.stp")
    ir = passes.elaborate_pass(parsed.artifact, kctx).artifact.read_json()
    assert len({p["origin"] for p in ir["probes"]}) >= len(dumps.PROBE_TYPES) - 2


@pytest.mark.kernel
def test_dump_functions_and_aliases_with_I(tmp_path):
    extra = tmp_path / "tapset"
    extra.mkdir()
    (extra / "mine.stp").write_text(
        "function my_public:long (x:long) { return x + 1 }\n"
        "function _my_helper() { }\n"
        "private function my_private() { }\n"
        "probe my.alias = kernel.function(\"vfs_read\") { }\n")
    r = ok(stapbuild("--dump-functions", "-I", str(extra)))
    lines = r.stdout.splitlines()
    assert "my_public:long (x:long)" in lines
    assert not any(l.startswith(("_my_helper", "my_private")) for l in lines)
    assert "HZ:long () /* pure */" in lines         # the default library is there too
    assert "my_public:long (x:long)" not in ok(stapbuild("--dump-functions")).stdout
    r = ok(stapbuild("--dump-probe-aliases", "-I", str(extra)))
    assert 'my.alias = kernel.function("vfs_read")' in r.stdout.splitlines()
    assert any(l.startswith("vfs.read = kernel.function(") for l in r.stdout.splitlines())


@pytest.mark.kernel
def test_rc_file_comes_first(tmp_path):
    sysdir = tmp_path / "stapdir"
    sysdir.mkdir()
    (sysdir / "rc").write_text("-p1 -r 6.1\n")
    r = ok(stapbuild("-e", "probe begin { exit() }", sysdir=sysdir))
    assert r.stdout.startswith("# parse tree dump\n")
    # The command line comes after the rc file: its -p2 wins.
    r = ok(stapbuild("-p2", "-e", "probe begin { exit() }", sysdir=sysdir))
    assert r.stdout.startswith("# globals\n")
    (sysdir / "rc").write_text("-p2 `id`\n")
    r = ok(stapbuild("-p1", "-r", "6.1", "-e", "probe begin { exit() }", sysdir=sysdir))
    assert "WARNING: ignoring " in r.stderr and "command substitution" in r.stderr


@pytest.mark.kernel
def test_extra_script_E():
    r = ok(stapbuild("-p2", "-r", "6.1", "-E", "probe end { printf(\"E1\\n\") }",
                     "-E", "global from_e2; probe timer.s(1) { from_e2++ }",
                     "-e", "probe begin { exit() }"))
    assert "from_e2:long" in r.stdout
    assert "timer.s(1) /* <- timer.s(1) */" in r.stdout
    assert "\nend /* <- end */" in r.stdout
    err = failed(stapbuild("-p2", "-r", "6.1", "-E", "probe begin { nope(1) }",
                           "-e", "probe begin { exit() }"))
    assert "identifier 'nope' at <input1>:1:15" in err


@pytest.mark.kernel
def test_include_dir_I_and_SYSTEMTAP_TAPSET(tmp_path):
    extra = tmp_path / "inc"
    extra.mkdir()
    (extra / "extra.stp").write_text("function from_include:long () { return 7 }\n")
    script = "probe begin { printf(\"%d %s\\n\", from_include(), execname()); exit() }"
    err = failed(stapbuild("-p2", "-r", "6.1", "-e", script))
    assert "unresolved function: identifier 'from_include'" in err
    r = ok(stapbuild("-p2", "-r", "6.1", "-I", str(extra), "-e", script))
    assert "from_include:long ()" in r.stdout and "execname:string ()" in r.stdout
    # SYSTEMTAP_TAPSET replaces the library: execname() is gone with it.
    err = failed(stapbuild("-p2", "-r", "6.1", "-e", script,
                           env={"SYSTEMTAP_TAPSET": str(extra)}))
    assert "unresolved function: identifier 'execname'" in err


@pytest.mark.kernel
def test_SYSTEMTAP_RELEASE_is_the_default_kernel():
    script = 'probe kernel.function("vfs_read") { }'
    by_env = ok(stapbuild("-p2", "-e", script, env={"SYSTEMTAP_RELEASE": "6.12"})).stdout
    assert by_env == ok(stapbuild("-p2", "-r", "6.12", "-e", script)).stdout
    assert by_env != ok(stapbuild("-p2", "-r", "6.1", "-e", script)).stdout


@pytest.mark.kernel
def test_warnings_w_and_W():
    script = "global unused_x, y; probe begin { y = 1; exit() }"
    r = ok(stapbuild("-p2", "-r", "6.1", "-e", script))
    assert "WARNING: Eliding unused variable 'unused_x'" in r.stderr
    r = ok(stapbuild("-p2", "-r", "6.1", "-w", "-e", script))
    assert "WARNING" not in r.stderr
    err = failed(stapbuild("-p2", "-r", "6.1", "-W", "-e", script))
    assert "WARNING: Eliding unused variable 'unused_x'" in err
    assert "Pass 2: analysis failed.  [man error::pass2]" in err
    ok(stapbuild("-p2", "-r", "6.1", "-W", "-e", "global y; probe begin { y = 1; exit() }"))
    # -u: no elision, so nothing to warn about; the library functions the
    # script does not call stay in the resolved script.
    r = ok(stapbuild("-p2", "-r", "6.1", "-u", "-W", "-e", script))
    assert r.stderr == "" and "\nwarn:unknown (msg:string)\n" in r.stdout


@pytest.mark.kernel
def test_G_needs_a_scalar_global_of_the_right_type():
    script = 'global n = 1, s = "a", arr; probe begin { arr[1] = n; printf("%d %s\\n", n, s) }'
    ok(stapbuild("-p2", "-r", "6.1", "-G", "n=5", "-G", "s=word", "-e", script))
    err = failed(stapbuild("-p2", "-r", "6.1", "-G", "nosuch=1", "-e", script))
    assert "semantic error: -G nosuch: no scalar global 'nosuch'" in err
    assert "Pass 2: analysis failed." in err
    err = failed(stapbuild("-p2", "-r", "6.1", "-G", "arr=1", "-e", script))
    assert "no scalar global 'arr'" in err
    err = failed(stapbuild("-p2", "-r", "6.1", "-G", "n=abc", "-e", script))
    assert "-G n: 'abc' is not a number" in err
    c = ok(stapbuild("-p3", "-r", "6.1", "-e", script)).stdout
    assert "module_param_named(n, stpg_param_" in c
    assert "module_param_string(s, stpg_param_" in c
    assert "module_param_named(arr" not in c


@pytest.mark.kernel
def test_keep_k_with_s_D_B_and_t(tmp_path):
    """-k keeps the build tree (and says where); -s, -D and -t reach the
    compiler there, -B reaches make."""
    env = {"TMPDIR": str(tmp_path)}
    script = "global n; probe kernel.function(\"vfs_read\") { n++ } probe begin { exit() }"
    r = ok(stapbuild("-p4", "-r", "6.1", "-k", "-s", "3", "-t", "-D", "MAXACTION=5000",
                     "-e", script, env=env))
    m = re.search(r'^Keeping temporary directory "([^"]+)"$', r.stderr, re.M)
    assert m, r.stderr
    kept = Path(m.group(1))
    assert kept.parent == tmp_path and kept.name.startswith("stap")
    kbuild = (kept / "Kbuild").read_text()
    assert f"-DSTP_BUFSIZE={3 * 1024 * 1024}" in kbuild
    assert "-DMAXACTION=5000" in kbuild and "-DSTP_TIMING=1" in kbuild
    ko = Path(r.stdout.strip())
    assert len(list(kept.glob("*.ko"))) == 1 and len(list(kept.glob("*_src.c"))) == 1
    # -t's report needs the timing counters in the module.
    assert b"----- probe hit report" in ko.read_bytes()
    shutil.rmtree(kept)
    err = failed(stapbuild("-p4", "-r", "6.1", "-B", "CC=/nonexistent/stapbuild-cc", "-e",
                           "probe begin { printf(\"B test\\n\"); exit() }"))
    # make ran the compiler -B named, which does not exist: status 127.
    assert "_src.o] Error 127" in err and "Pass 4: compilation failed." in err


@pytest.mark.kernel
def test_runtime_dir_R(tmp_path):
    rt = tmp_path / "runtime"
    shutil.copytree(ROOT / "runtime_c", rt)
    head = (rt / "stp_runtime.h").read_text()
    (rt / "stp_runtime.h").write_text("#error stapbuild-R-marker\n" + head)
    script = "probe begin { printf(\"R test\\n\"); exit() }"
    err = failed(stapbuild("-p4", "-r", "6.1", "-R", str(rt), "-e", script))
    assert "stapbuild-R-marker" in err and "Pass 4: compilation failed." in err
    err = failed(stapbuild("-p4", "-r", "6.1", "-e", script,
                           env={"SYSTEMTAP_RUNTIME": str(rt)}))
    assert "stapbuild-R-marker" in err
    err = failed(stapbuild("-p4", "-r", "6.1", "-R", str(tmp_path / "none"), "-e", script))
    assert "has no stp_runtime.h" in err


@pytest.mark.kernel
def test_disable_poison_and_clean_cache(tmp_path):
    store = tmp_path / "store"
    env = {"STAPBUILD_ARTIFACTS": str(store)}
    script = "global counted; probe begin { counted = 1; exit() }"
    r = ok(stapbuild("-v", "-p3", "-r", "6.1", "--disable-cache", "-e", script, env=env))
    assert not store.exists() or not any(p.is_file() for p in store.rglob("*"))
    assert "Pass 3: translated to C into" in r.stderr
    ok(stapbuild("-p2", "-r", "6.1", "-e", script, env=env))
    elab = [p for p in (store / "store" / "elaborate").rglob("*.json")]
    assert len(elab) == 1
    # Doctor the stored pass-2 result (and its digest): a run that reads
    # the store shows the doctored global, a poisoned one does not...
    doc = elab[0].read_text().replace('"counted"', '"doctored"')
    elab[0].write_text(doc)
    from stapbuild.store import seal
    seal(elab[0])
    assert "doctored:long" in ok(stapbuild("-p2", "-r", "6.1", "-e", script, env=env)).stdout
    r = ok(stapbuild("-p2", "-r", "6.1", "--poison-cache", "-e", script, env=env))
    assert "counted:long" in r.stdout
    # ... and still writes what it built: the store holds the true result again.
    assert "counted:long" in ok(stapbuild("-p2", "-r", "6.1", "-e", script, env=env)).stdout
    # --clean-cache shrinks the store to cache_mb_limit and does nothing else.
    (store / "cache_mb_limit").write_text("0\n")
    r = ok(stapbuild("--clean-cache", "-e", "probe begin { nope( }", env=env))
    assert r.stdout == ""
    assert not [p for p in (store / "store").rglob("*") if p.is_file()]


@pytest.mark.kernel
def test_json_lines_for_passes_and_errors():
    r = ok(stapbuild("--json", "-p2", "-r", "6.1", "-e",
                     "global unused_j, y; probe begin { y = 1; exit() }"))
    assert r.stderr == ""
    objs = [json.loads(l) for l in r.stdout.splitlines()]
    assert [o["pass"] for o in objs if o["type"] == "pass"] == [1, 2]
    assert all(o["ok"] for o in objs if o["type"] == "pass")
    assert all(isinstance(o["real_ms"], int) for o in objs if o["type"] == "pass")
    warn = [o for o in objs if o["type"] == "warning"]
    assert len(warn) == 1 and warn[0]["pass"] == 2
    assert warn[0]["text"].startswith("WARNING: Eliding unused variable 'unused_j'")
    assert "\n source: " in warn[0]["text"]            # one object per diagnostic
    assert [o["text"] for o in objs if o["type"] == "output"][:2] == ["# globals", "y:long"]
    assert objs[-1]["type"] == "exit" and objs[-1]["status"] == 0
    assert all(isinstance(o["ts"], float) for o in objs)

    r = stapbuild("--json", "-p4", "-r", "6.1", "-e", "probe begin { foo(1) }")
    assert r.returncode == 1 and r.stderr == "" and "Traceback" not in r.stdout
    objs = [json.loads(l) for l in r.stdout.splitlines()]
    errors = [o["text"] for o in objs if o["type"] == "error"]
    assert errors[0].startswith("semantic error: unresolved function: identifier 'foo'")
    assert errors[1] == "Pass 2: analysis failed.  [man error::pass2]"
    assert [o["ok"] for o in objs if o["type"] == "pass"] == [True, False]
    assert objs[-1] == {**objs[-1], "type": "exit", "status": 1}
    # A command-line error is JSON too.
    r = stapbuild("--json", "-s", "0", "-e", "probe begin { }")
    objs = [json.loads(l) for l in r.stdout.splitlines()]
    assert objs[0]["type"] == "error" and objs[0]["text"] == "Invalid buffer size (should be 1-4095)."
    assert objs[-1]["status"] == 1 and r.returncode == 1


@pytest.mark.kernel
def test_stdin_script_vp_and_example():
    e = dict(os.environ, SYSTEMTAP_DIR="/nonexistent-stapbuild-test-dir")
    r = subprocess.run([sys.executable, "-m", "stapbuild.cli", "-p2", "-r", "6.1", "--vp", "01",
                        "-"], input="global from_stdin; probe begin { from_stdin = 1; exit() }",
                       cwd=ROOT, env=e, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "from_stdin:long" in r.stdout
    # --vp 01: pass 2's line, not pass 1's.
    assert r.stderr.startswith("Pass 2: analyzed script: ") and "Pass 1:" not in r.stderr
    assert "Invalid --vp argument: it takes 1 to 5 digits." in failed(
        stapbuild("--vp", "1x", "-e", "probe begin { }"))
    r = ok(stapbuild("-p1", "-r", "6.1", "--example", "hz"))
    assert "# file probes/hz.stp" in r.stdout


@pytest.mark.kernel
def test_tmpdir_for_k(tmp_path):
    r = ok(stapbuild("-p3", "-r", "6.1", "-k", "--tmpdir", str(tmp_path), "-e",
                     "probe begin { exit() }"))
    kept = Path(re.search(r'Keeping temporary directory "([^"]+)"', r.stderr).group(1))
    assert kept.parent == tmp_path
    assert [p.name.endswith("_src.c") for p in kept.iterdir()] == [True]


@pytest.mark.kernel
def test_compatible_selects_the_language_version():
    script = 'probe begin { %( systemtap_v >= "4.0" %? println("new") %: println("old") %) }'
    assert 'println("new")' in ok(stapbuild("-p1", "-r", "6.1", "-e", script)).stdout
    old = ok(stapbuild("-p1", "-r", "6.1", "--compatible", "3.0", "-e", script)).stdout
    assert 'println("old")' in old and 'println("new")' not in old
    # Before 3.0 `private` was no keyword: a global may be called that.
    legacy = 'global private = 1\nprobe begin { println(private) }'
    assert "parse error" in failed(stapbuild("-p1", "-r", "6.1", "-e", legacy))
    ok(stapbuild("-p1", "-r", "6.1", "--compatible", "2.9", "-e", legacy))
    assert "Invalid --compatible version 'x1'." in failed(
        stapbuild("-p1", "--compatible", "x1", "-e", "probe begin { }"))
