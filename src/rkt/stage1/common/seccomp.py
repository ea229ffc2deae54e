"""Seccomp policy of an app: rkt's syscall groups and the resolution of the seccomp isolators.

Owns: the named groups of rkt's seccomp guide (``@rkt/default-blacklist``, ``@rkt/default-
whitelist``, ``@docker/default-*``, ``@appc.io/all``, ``@appc.io/empty``) as plain name lists,
the sibling table that makes a named syscall carry its ``*at``/newer variants (blocking ``mount``
without ``move_mount``/``fsmount`` would be a hole), and ``resolve_seccomp``: the isolators of an
app (or rkt's default, retain ``@rkt/default-whitelist``) turned into a ``SeccompPolicy``.

Deviation from rkt (docs/security.md): a blocked call fails with EPERM (or the isolator's errno);
rkt killed the app with SIGSYS unless an errno was named.

Pure: no I/O. Imports only the standard library, ``rkt.errors`` and ``rkt.schema``.
"""

from __future__ import annotations

import errno as errno_names

from rkt import jsonio
from rkt.errors import PodError
from rkt.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, Literal

    from rkt.schema.isolators import SeccompSet


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# rkt's seccomp guide / Docker's default profile: the default blacklist (reference §4.3).
DEFAULT_BLACKLIST: tuple[str, ...] = _names(
    """acct add_key adjtimex bpf clock_adjtime clock_settime create_module delete_module
    finit_module get_kernel_syms get_mempolicy init_module ioperm iopl kcmp kexec_file_load
    kexec_load keyctl lookup_dcookie mbind mount move_pages name_to_handle_at nfsservctl
    open_by_handle_at perf_event_open pivot_root process_vm_readv process_vm_writev ptrace
    query_module quotactl reboot request_key set_mempolicy setns settimeofday stime swapon
    swapoff sysfs _sysctl umount umount2 unshare uselib userfaultfd ustat vm86 vm86old"""
)

# Docker's default whitelist (the calls its default profile allows without a capability
# condition), which rkt ships as @docker/default-whitelist and @rkt/default-whitelist.
# Names of other architectures (chown32, _llseek, ...) are kept: the loader skips the names
# libseccomp does not know for the running architecture.
DEFAULT_WHITELIST: tuple[str, ...] = _names(
    """accept accept4 access alarm arch_prctl bind brk capget capset chdir chmod chown chown32
    chroot clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
    clock_nanosleep_time64 clone clone3 close close_range connect copy_file_range creat dup dup2
    dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
    epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2
    fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown
    fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr
    fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex
    futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid getegid32
    geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid
    getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32
    getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid
    gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1
    inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64
    ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset
    landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr llistxattr
    _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier memfd_create mincore
    mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 modify_ldt mprotect
    mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
    mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall
    munmap nanosleep newfstatat _newselect open openat openat2 pause personality pidfd_getfd
    pidfd_open pidfd_send_signal pipe pipe2 poll ppoll ppoll_time64 prctl pread64 preadv
    preadv2 prlimit64 pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead
    readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
    removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction
    rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
    rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
    sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
    sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
    semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
    setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
    setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
    setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid
    setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
    sigprocmask sigreturn socket socketcall socketpair splice stat stat64 statfs statfs64
    statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
    timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
    timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times
    tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat
    utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev"""
)

ALL = "@appc.io/all"
EMPTY = "@appc.io/empty"
GROUPS: dict[str, tuple[str, ...]] = {
    "@rkt/default-blacklist": DEFAULT_BLACKLIST,
    "@rkt/default-whitelist": DEFAULT_WHITELIST,
    "@docker/default-blacklist": DEFAULT_BLACKLIST,
    "@docker/default-whitelist": DEFAULT_WHITELIST,
    EMPTY: (),
}

# A name stands for its variants: the same operation reached through another entry point.
SIBLINGS: dict[str, tuple[str, ...]] = {
    "mount": (
        "mount_setattr",
        "move_mount",
        "open_tree",
        "fsopen",
        "fsmount",
        "fsconfig",
        "fspick",
    ),
    "umount": ("umount2",),
    "open": ("openat", "openat2", "creat"),
    "mkdir": ("mkdirat",),
    "mknod": ("mknodat",),
    "chmod": ("fchmodat", "fchmodat2"),
    "chown": ("fchownat", "lchown"),
    "unlink": ("unlinkat",),
    "rmdir": ("unlinkat",),
    "rename": ("renameat", "renameat2"),
    "link": ("linkat",),
    "symlink": ("symlinkat",),
    "readlink": ("readlinkat",),
    "access": ("faccessat", "faccessat2"),
    "stat": ("newfstatat", "statx"),
    "utimes": ("utimensat", "futimesat"),
    "execve": ("execveat",),
    "kexec_load": ("kexec_file_load",),
    "init_module": ("finit_module",),
    "keyctl": ("add_key", "request_key"),
    "process_vm_readv": ("process_vm_writev",),
    "name_to_handle_at": ("open_by_handle_at",),
}

if TYPE_CHECKING:
    Mode = Literal["retain", "remove"]


class SeccompPolicy(NamedTuple):
    """What the filter does: ``retain``: only ``syscalls`` run (the rest fail with ``errno``);
    ``remove``: ``syscalls`` fail with ``errno`` and everything else runs."""

    mode: Mode
    syscalls: tuple[str, ...]
    errno: int = errno_names.EPERM

    def blocks(self, name: str) -> bool:
        return (name in self.syscalls) != (self.mode == "retain")

    def to_json_obj(self) -> dict[str, Any]:
        return {"mode": self.mode, "syscalls": list(self.syscalls), "errno": self.errno}

    @classmethod
    def from_json_obj(cls, obj: dict[str, Any]) -> SeccompPolicy:
        mode = obj["mode"]
        if mode not in ("retain", "remove"):
            raise ValueError(f"bad seccomp mode {mode!r}")
        return cls(mode=mode, syscalls=tuple(obj["syscalls"]), errno=int(obj["errno"]))

    def to_json(self) -> bytes:
        return jsonio.dumps(self.to_json_obj()).encode()


def errno_number(name: str) -> int:
    value = getattr(errno_names, name, None)
    if not name.startswith("E") or not isinstance(value, int):
        raise PodError(f'seccomp: "{name}" is not an errno name')
    return value


def expand_syscalls(names: Iterable[str]) -> tuple[str, ...] | None:
    """Names and ``@groups`` expanded (with siblings), sorted; None means every syscall."""
    out: set[str] = set()
    for name in names:
        if name == ALL:
            return None
        if name.startswith("@"):
            if name not in GROUPS:
                raise PodError(f'seccomp: unknown syscall group "{name}"')
            out.update(GROUPS[name])
        else:
            out.add(name)
    for name in list(out):
        out.update(SIBLINGS.get(name, ()))
    return tuple(sorted(out))


def policy_from_set(mode: Mode, names: Iterable[str], errno: str | None) -> SeccompPolicy:
    number = errno_number(errno) if errno else errno_names.EPERM
    syscalls = expand_syscalls(names)
    if syscalls is None:  # @appc.io/all: retain all = nothing blocked, remove all = everything
        return SeccompPolicy("remove" if mode == "retain" else "retain", (), number)
    return SeccompPolicy(mode, syscalls, number)


DEFAULT_POLICY = policy_from_set("retain", ["@rkt/default-whitelist"], None)


def resolve_seccomp(sets: Iterable[SeccompSet], insecure: frozenset[str]) -> SeccompPolicy | None:
    """The app's filter: its seccomp isolator, else rkt's default; None with ``seccomp`` off."""
    if "seccomp" in insecure:
        return None
    chosen = list(sets)
    if not chosen:
        return DEFAULT_POLICY
    last = chosen[-1]
    return policy_from_set(last.mode, last.syscalls, last.errno)
