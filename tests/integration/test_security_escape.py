"""Issue 4, acceptance 1 and 2: the escape suite, run from inside a default pod through the real
``rkt run``. Every attempt is made by a small static C helper (compiled at test time with
``gcc -static``) that prints ``ok`` or ``err <ERRNO>``; each must fail by default, and the ones
where it means something succeed again with the matching ``--insecure-options``."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root, require_tool
from tests.integration.conftest import ImageFactory, Rkt, image_manifest
from tests.integration.test_pod_lifecycle import require_default_stage1

HERE = Path(__file__).parent
HELPER_SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int report(long r) {
    if (r < 0) { printf("err %s\n", strerrorname_np(errno)); return 1; }
    printf("ok\n"); return 0;
}

int main(int argc, char **argv) {
    const char *a = argc > 1 ? argv[1] : "";
    const char *arg = argc > 2 ? argv[2] : "";
    if (!strcmp(a, "mount")) return report(mount("none", "/tmp", "tmpfs", 0, ""));
    if (!strcmp(a, "umount")) return report(umount2("/tmp", MNT_DETACH));
    if (!strcmp(a, "unshare")) return report(unshare(CLONE_NEWNS));
    if (!strcmp(a, "unshare-user")) return report(unshare(CLONE_NEWUSER));
    if (!strcmp(a, "clone-ns")) {
        long pid = syscall(SYS_clone, CLONE_NEWUTS | 17, 0, 0, 0, 0);
        if (pid == 0) _exit(0);
        return report(pid);
    }
    if (!strcmp(a, "setns")) {
        int fd = open(*arg ? arg : "/proc/1/ns/mnt", O_RDONLY);
        return report(fd < 0 ? -1 : setns(fd, 0));
    }
    if (!strcmp(a, "pivot_root")) return report(syscall(SYS_pivot_root, "/", "/"));
    if (!strcmp(a, "ptrace")) return report(ptrace(PTRACE_ATTACH, atoi(arg), 0, 0));
    if (!strcmp(a, "open-write")) return report(open(arg, O_WRONLY));
    if (!strcmp(a, "open-read")) return report(open(arg, O_RDONLY));
    if (!strcmp(a, "kallsyms")) {
        FILE *f = fopen("/proc/kallsyms", "r"); char line[512];
        if (!f) return report(-1);
        while (fgets(line, sizeof line, f))
            if (strtoull(line, 0, 16)) { printf("ok\n"); return 0; }
        printf("err zeros\n"); return 1;
    }
    if (!strcmp(a, "module")) return report(syscall(SYS_init_module, 0, 0, ""));
    if (!strcmp(a, "finit_module")) return report(syscall(SYS_finit_module, -1, "", 0));
    /* LINUX_REBOOT_CMD_CAD_ON: harmless, EINVAL inside a pid namespace when permitted */
    if (!strcmp(a, "reboot"))
        return report(syscall(SYS_reboot, 0xfee1dead, 672274793, 0x89ABCDEF, 0));
    if (!strcmp(a, "keyctl")) return report(syscall(SYS_keyctl, 0, -3, 0));
    if (!strcmp(a, "bpf")) {
        union bpf_attr attr; memset(&attr, 0, sizeof attr);
        attr.map_type = BPF_MAP_TYPE_ARRAY; attr.key_size = 4; attr.value_size = 4;
        attr.max_entries = 1;
        return report(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
    }
    if (!strcmp(a, "perf")) {
        struct perf_event_attr attr; memset(&attr, 0, sizeof attr);
        attr.type = PERF_TYPE_SOFTWARE; attr.size = sizeof attr;
        attr.config = PERF_COUNT_SW_CPU_CLOCK; attr.exclude_kernel = 1; attr.exclude_hv = 1;
        return report(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
    }
    if (!strcmp(a, "rawsock")) return report(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
    if (!strcmp(a, "mknod-block"))
        return report(mknod("/blockdev", S_IFBLK | 0600, makedev(8, 0)));
    if (!strcmp(a, "sethostname")) return report(sethostname("escaped", 7));
    if (!strcmp(a, "euid")) { printf("euid=%d\n", geteuid()); return 0; }
    if (!strcmp(a, "chroot")) {  /* chroot deeper, fchdir to the old root, walk "..", chroot . */
        mkdir("/tmp/jail", 0755);
        int fd = open("/", O_RDONLY | O_DIRECTORY);
        if (chroot("/tmp/jail") < 0 || fchdir(fd) < 0) return report(-1);
        for (int i = 0; i < 64; i++) chdir("..");
        if (chroot(".") < 0) return report(-1);
        return report(access(arg, F_OK));  /* "ok" would mean the host's file is visible */
    }
    fprintf(stderr, "unknown action %s\n", a);
    return 2;
}
"""

# A file of the host that no test image has: seeing it from a pod is an escape.
HOST_ONLY = "/etc/debian_version"
SYSFS_KNOB = "/sys/kernel/profiling"  # only ever opened, never written
DEFAULT_CAPBND = "00000000a80425fb"

ATTEMPTS = [
    *("mount", "umount", "unshare", "unshare-user", "clone-ns", "setns", "pivot_root"),
    *("keyctl", "bpf", "perf", "module", "finit_module", "reboot", "mknod-block"),
    *("sethostname", "kallsyms"),
]
SCRIPT = (
    "until busybox pidof sleep >/dev/null; do :; done\n"
    + "".join(f'echo "{a}: $(/escape {a})"\n' for a in ATTEMPTS)
    + 'echo "setns-self: $(/escape setns /proc/self/ns/uts)"\n'
    + 'echo "ptrace: $(/escape ptrace $(busybox pidof sleep))"\n'
    + 'echo "sysrq: $(/escape open-write /proc/sysrq-trigger)"\n'
    + 'echo "core_pattern: $(/escape open-write /proc/sys/kernel/core_pattern)"\n'
    + 'echo "kcore: $(/escape open-read /proc/kcore)"\n'
    + f'echo "syskernel: $(/escape open-write {SYSFS_KNOB})"\n'
    + 'echo "cgroup: $(/escape open-write /sys/fs/cgroup/pids/cgroup.procs)"\n'
    + f'echo "proc1root: $(/escape open-read /proc/1/root{HOST_ONLY})"\n'
    + 'echo "proc1cwd: $(/escape open-read /proc/1/cwd/pod)"\n'
    + f'echo "chroot: $(/escape chroot {HOST_ONLY})"\n'
    + 'echo "hostname: $(busybox hostname)"\n'
    + "busybox grep -E '^(CapBnd|CapEff|Seccomp|NoNewPrivs):' /proc/self/status\n"
    + "exit 7\n"  # a failing app ends the pod (rkt's semantics): b's sleep is stopped
)


@pytest.fixture(scope="session")
def escape_helper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_root()
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("escape") / "escape"
    src = out.with_suffix(".c")
    src.write_text(HELPER_SOURCE)
    subprocess.run([gcc, "-static", "-O1", "-o", str(out), str(src)], check=True)
    return out


@pytest.fixture
def escape_image(images: ImageFactory, escape_helper: Path) -> Path:
    """busybox + /escape + /suid (a setuid-root copy) + a non-root user."""
    require_default_stage1()
    src = images.workdir / "escape-src"
    shutil.copytree(images.rootfs, src / "rootfs", symlinks=True)
    shutil.copy2(escape_helper, src / "rootfs" / "escape")
    shutil.copy2(escape_helper, src / "rootfs" / "suid")
    (src / "rootfs" / "suid").chmod(0o4755)
    (src / "rootfs" / "tmp").mkdir()
    passwd = src / "rootfs" / "etc" / "passwd"
    passwd.write_text(passwd.read_text() + "user:x:1000:1000::/:/bin/sh\n")
    (src / "manifest").write_text(json.dumps(image_manifest("example.com/escape")))
    out = images.workdir / "escape.aci"
    images.rkt.run("image", "build", "--overwrite", str(src), str(out))
    return out


def run_pod(rkt: Rkt, *args: str, insecure: str = "") -> subprocess.CompletedProcess[str]:
    opts = "image" + ("," + insecure if insecure else "")
    return rkt.run(
        "run", f"--insecure-options={opts}", "--net=host", *args, check=False, timeout=120
    )


def escape_pod(rkt: Rkt, image: Path, insecure: str = "") -> dict[str, str]:
    proc = run_pod(
        rkt,
        str(image),
        "--name=a",
        "--exec=/bin/sh",
        "--",
        "-c",
        SCRIPT,
        "---",
        str(image),
        "--name=b",
        "--exec=/bin/sleep",
        "--",
        "300",
        "---",
        insecure=insecure,
    )
    assert proc.returncode == 7, proc.stderr
    results = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            results[key.strip()] = value.strip()
    return results


@pytest.fixture
def gc_after(rkt: Rkt) -> Iterator[None]:
    yield
    if rkt.dir.is_dir():
        rkt.run("gc", "--grace-period=0s", check=False)


@pytest.mark.slow
def test_escape_attempts_fail_in_a_default_pod(
    rkt: Rkt, escape_image: Path, gc_after: None
) -> None:
    host_name = socket.gethostname()
    seen = escape_pod(rkt, escape_image)
    for attempt in (*ATTEMPTS, "ptrace", "sysrq", "core_pattern", "syskernel", "cgroup"):
        if attempt == "kallsyms":
            assert seen[attempt] in ("err zeros", "ok") and seen[attempt] != "ok", seen
        else:
            assert seen[attempt].startswith("err "), (attempt, seen)
    # a blocked call gets EPERM (never SIGSYS, never silently allowed)
    for attempt in ("mount", "unshare", "setns-self", "keyctl", "bpf", "perf", "reboot", "ptrace"):
        assert seen[attempt] == "err EPERM", (attempt, seen)
    assert seen["kcore"].startswith("err ")
    assert seen["proc1root"].startswith("err ") and seen["proc1cwd"].startswith("err ")
    assert seen["chroot"] == "err ENOENT"  # the ".." walk ends at the app's own root
    assert seen["CapBnd"] == seen["CapEff"] == DEFAULT_CAPBND
    assert seen["Seccomp"] == "2" and seen["NoNewPrivs"] == "1"
    assert seen["hostname"].startswith("rkt-")
    assert socket.gethostname() == host_name


@pytest.mark.slow
def test_insecure_all_run_allows_them_again(rkt: Rkt, escape_image: Path, gc_after: None) -> None:
    host_name = socket.gethostname()
    seen = escape_pod(rkt, escape_image, insecure="all-run")
    for attempt in ("mount", "unshare", "unshare-user", "clone-ns", "keyctl", "sethostname"):
        assert seen[attempt] == "ok", (attempt, seen)
    assert seen["reboot"] == "err EINVAL"  # permitted; refused only for its harmless command
    assert seen["kallsyms"] == "ok"  # CAP_SYSLOG is back
    assert seen["core_pattern"] == "ok"  # only opened: the masks are off
    assert seen["Seccomp"] == "0" and seen["CapBnd"] != DEFAULT_CAPBND
    assert socket.gethostname() == host_name  # the pod's own UTS namespace changed, not ours


@pytest.mark.slow
def test_each_insecure_option_turns_off_only_its_own_protection(
    rkt: Rkt, escape_image: Path, gc_after: None
) -> None:
    seccomp_off = escape_pod(rkt, escape_image, insecure="seccomp")
    assert seccomp_off["Seccomp"] == "0" and seccomp_off["CapBnd"] == DEFAULT_CAPBND
    assert seccomp_off["mount"] == "err EPERM"  # still no CAP_SYS_ADMIN
    assert seccomp_off["keyctl"] == "ok"  # the seccomp filter was what refused it
    paths_off = escape_pod(rkt, escape_image, insecure="paths")
    assert paths_off["core_pattern"] == "ok" and paths_off["Seccomp"] == "2"
    caps_off = escape_pod(rkt, escape_image, insecure="capabilities")
    assert caps_off["CapBnd"] != DEFAULT_CAPBND and caps_off["Seccomp"] == "2"
    assert caps_off["mount"] == "err EPERM"  # the filter still refuses it


@pytest.mark.slow
def test_raw_socket_needs_cap_net_raw(rkt: Rkt, escape_image: Path, gc_after: None) -> None:
    def rawsock(*flags: str) -> str:
        proc = run_pod(rkt, str(escape_image), *flags, "--exec=/escape", "--", "rawsock", "---")
        return proc.stdout.strip()

    assert rawsock() == "ok"
    assert rawsock("--caps-remove=CAP_NET_RAW") == "err EPERM"
    assert rawsock("--caps-retain=CAP_NET_BIND_SERVICE") == "err EPERM"


@pytest.mark.slow
def test_caps_flags_set_the_bounding_set(rkt: Rkt, escape_image: Path, gc_after: None) -> None:
    def status(*flags: str) -> str:
        script = "busybox grep -E '^Cap(Bnd|Eff|Amb):' /proc/self/status"
        proc = run_pod(rkt, str(escape_image), *flags, "--exec=/bin/sh", "--", "-c", script, "---")
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    removed = status("--caps-remove=CAP_NET_RAW,CAP_MKNOD")
    assert f"CapBnd:\t{0xA80425FB & ~(1 << 13) & ~(1 << 27):016x}" in removed
    retained = status("--caps-retain=CAP_CHOWN,CAP_KILL")
    assert f"CapBnd:\t{(1 << 0) | (1 << 5):016x}" in retained
    # a non-root app with a retain set gets it as ambient capabilities, so it survives exec
    user = status("--user=1000", "--group=1000", "--caps-retain=CAP_NET_BIND_SERVICE")
    assert f"CapAmb:\t{1 << 10:016x}" in user and f"CapEff:\t{1 << 10:016x}" in user
    both = run_pod(rkt, str(escape_image), "--caps-retain=CAP_KILL", "--caps-remove=CAP_KILL")
    assert both.returncode == 2 and "cannot be used together" in both.stderr


def test_the_app_root_and_dev_are_nodev(rkt: Rkt, escape_image: Path, gc_after: None) -> None:
    """A device node an app makes (CAP_MKNOD is in rkt's default set) opens nothing in its root
    or /dev, where cgroup v2 has no devices controller to refuse it; the nodes it is given are
    mounts of their own and work."""
    script = (
        'busybox awk \'$5 == "/" || $5 == "/dev" || $5 == "/dev/null" {print $5, $6}\' '
        "/proc/self/mountinfo; echo x > /dev/null && echo null-works"
    )
    proc = run_pod(rkt, str(escape_image), "--exec=/bin/sh", "--", "-c", script, "---")
    assert proc.returncode == 0, proc.stderr
    options = dict(line.split() for line in proc.stdout.splitlines()[:-1])
    assert "nodev" in options["/"].split(",") and "nodev" in options["/dev"].split(",")
    assert "nodev" not in options["/dev/null"].split(",")
    assert proc.stdout.splitlines()[-1] == "null-works"


@pytest.mark.slow
def test_setuid_binary_gains_nothing_under_no_new_privs(
    rkt: Rkt, escape_image: Path, gc_after: None
) -> None:
    def euid(insecure: str = "") -> str:
        args = (str(escape_image), "--user=1000", "--group=1000", "--exec=/suid", "--", "euid")
        return run_pod(rkt, *args, "---", insecure=insecure).stdout.strip()

    assert euid() == "euid=1000"
    assert euid("seccomp") == "euid=0"  # without the filter, no_new_privs is not forced


def test_a_seccomp_filter_the_app_cannot_run_under_is_refused_on_one_line(
    rkt: Rkt, escape_image: Path, gc_after: None
) -> None:
    """A name libseccomp does not know, or a filter that blocks execve: the pod's one app
    fails to start with the reason (it used to end in SIGSEGV, exit 139, and no message)."""
    for flag, reason in (
        ("--seccomp=mode=retain,nosuchsyscall", 'unknown system call "nosuchsyscall"'),
        ("--seccomp=mode=remove,@rkt/default-blacklist,nosuchsyscall", "unknown system call"),
        ("--seccomp=mode=retain,write", "the filter blocks execve, which starts the app"),
        ("--seccomp=mode=remove,@appc.io/all", "the filter blocks execve"),
    ):
        proc = run_pod(rkt, str(escape_image), flag, "--exec=/escape", "--", "keyctl", "---")
        assert proc.returncode == 254, (flag, proc.stderr)
        lines = [line for line in proc.stderr.splitlines() if "rkt: warning:" not in line]
        assert len(lines) == 1 and reason in lines[0], (flag, proc.stderr)


@pytest.mark.slow
def test_seccomp_flag_modes_and_errno(rkt: Rkt, escape_image: Path, gc_after: None) -> None:
    def attempt(*flags: str, action: str = "keyctl") -> str:
        proc = run_pod(rkt, str(escape_image), *flags, "--exec=/escape", "--", action, "---")
        return proc.stdout.strip() or proc.stderr

    assert attempt("--seccomp=mode=remove,errno=ENOTSUP,@rkt/default-blacklist") == (
        "err EOPNOTSUPP"
    )
    # not in the remove set: refused by the kernel (no CAP_SYS_MODULE, or no module support)
    assert attempt("--seccomp=mode=remove,mkdir", action="module").startswith("err ")
    assert re.fullmatch(r"err E\w+", attempt("--seccomp=mode=remove,umount", action="umount"))
    # a retain set: only what is listed runs (plus nothing else); keyctl is not listed
    assert attempt("--seccomp=mode=retain,@rkt/default-whitelist") == "err EPERM"
    bad = run_pod(rkt, str(escape_image), "--seccomp=mode=keep,read")
    assert bad.returncode == 2
