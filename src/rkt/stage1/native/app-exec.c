/* app-exec: the last step of starting an app (or the command of `rkt enter`): it runs a launch
 * plan, then execve's the app.
 *
 * The Python side of the ns flavor decides everything (src/rkt/stage1/ns/launch.py
 * `launch_plan`): which cgroup, which mounts in which order, which capabilities, which seccomp
 * rules, which environment. It writes that decision as a plan, and the pod init (or the enter
 * entrypoint) forks and exec's this program with the plan on a file descriptor. This program
 * makes no decision of its own: it performs the steps in the order given and stops at the first
 * that fails. Being C, an app starts in about a millisecond instead of an interpreter's worth of
 * work (issue 3; docs/architecture.md "Native resident processes and the app launcher").
 *
 * usage: app-exec PLAN_FD
 *        app-exec --export-bpf PLAN_FD   (tests: write the plan's seccomp filter as BPF to stdout)
 *
 * The same code is linked into pod-init, built with musl and RKT_APP_EXEC_BPF_ONLY (no
 * libseccomp): pod-init runs it in each app's fork for a plan whose filter is compiled already
 * ("seccomp-bpf", rkt's default), and exec's this program for one that names rules (apps.h).
 *
 * The plan is a sequence of NUL-terminated strings. Each step is a keyword and its arguments;
 * an empty argument means "none" (a NULL pointer) where the argument is optional. Numbers are
 * decimal. The steps, in the order the planner emits them:
 *
 *   label TEXT                        prefix of error messages ("stage1: app \"x\"")
 *   write FILE DATA                   write DATA to FILE (cgroup join)
 *   oom-score-adj N                   write N to /proc/self/oom_score_adj (a process that
 *                                     changed its ids in a user namespace is not dumpable, and
 *                                     its /proc files are the host root's: it is made dumpable
 *                                     for the write, as its execve makes it again; lowering the
 *                                     score needs CAP_SYS_RESOURCE, which the message names)
 *   unshare FLAGS                     unshare(2)
 *   root DIR                          the app's root: mounts below resolve inside it
 *   mount TARGET SRC FSTYPE FLAGS DATA CREATE
 *                                     mount onto TARGET resolved inside the root (openat2
 *                                     RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS, then the
 *                                     /proc/self/fd magic link: no second path walk); CREATE is
 *                                     "dir", "file" or "" (must exist), or "file-if-source":
 *                                     "file", and no mount at all when SRC does not exist. A
 *                                     sysfs mount refused with EPERM (a user namespace without
 *                                     its own netns) binds /sys read-only instead.
 *   await FD                          wait until the pod's network is up: FD is the read end of
 *                                     the network attacher's barrier, readable once it is up,
 *                                     at end of file if it failed (then exit 254 quietly: the
 *                                     pod init reports the failure)
 *   symlink PATH TARGET               a symlink at PATH inside the root
 *   pivot                             pivot_root into the root; the old root is detached
 *   mask TARGET SRC FSTYPE FLAGS DATA a plain mount, skipped when TARGET does not exist
 *   bounding KEEP                     drop every capability not in the mask KEEP from the bounding set
 *   keepcaps                          PR_SET_KEEPCAPS (a setuid keeps the permitted set)
 *   nnp                               PR_SET_NO_NEW_PRIVS
 *   ids UID GID N GID...              setgroups, setresgid, setresuid
 *   caps KEEP                         clear the ambient set; effective, permitted, inheritable &= KEEP
 *   ambient MASK                      raise MASK (& permitted) in the inheritable and ambient sets
 *   seccomp RETAIN ERRNO N NAME...    the filter exec loads: RETAIN 1 allows only NAMEs, 0
 *                                     blocks them; a blocked call fails with ERRNO (rules: see
 *                                     build_filter). Compiled here, where the step is (the
 *                                     planner puts it first: a pod's apps compile it while the
 *                                     network is attached)
 *   seccomp-bpf HEX                   the filter exec loads, compiled beforehand (rkt's default:
 *                                     the stage1's seccomp-default, rkt.stage1.ns.prebuilt)
 *   exec CWD ARGC ARG... ENVC ENV...  chdir, PATH lookup (in ENV's PATH), then the seccomp filter
 *                                     is loaded, every fd above 2 closed, execve. Always last.
 *
 * Signals are reset first (default dispositions, nothing blocked): the pod init forks us with
 * its stop signals blocked. A failed step prints "LABEL: what: cause" on stderr and exits 254;
 * a failed execve exits 127 (not found) or 126 (not executable), as shells do.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sched.h>
#ifndef RKT_APP_EXEC_BPF_ONLY
#include <seccomp.h>
#endif
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <grp.h>

#include "plan.h"

/* -- files and mounts ---------------------------------------------------------------------- */

static void write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		fail(errno, "open %s", path);
	ssize_t len = (ssize_t)strlen(data);
	if (write(fd, data, (size_t)len) != len)
		fail(errno, "write %s", path);
	close(fd);
}

static void oom_score_adj(const char *value)
{
	const char *path = "/proc/self/oom_score_adj";
	int fd = open(path, O_WRONLY | O_CLOEXEC), dumpable = -1;
	if (fd < 0 && errno == EACCES && (dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)) == 0) {
		if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
			fail(errno, "PR_SET_DUMPABLE");
		fd = open(path, O_WRONLY | O_CLOEXEC);
	}
	if (fd < 0)
		fail(errno, "open %s", path);
	ssize_t len = (ssize_t)strlen(value);
	if (write(fd, value, (size_t)len) != len) {
		if ((errno == EACCES || errno == EPERM) && value[0] == '-')
			fail(errno, "oom score %s: lowering it needs CAP_SYS_RESOURCE", value);
		fail(errno, "write %s", path);
	}
	close(fd);
	if (dumpable == 0 && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fail(errno, "PR_SET_DUMPABLE");
}

static int openat2_in(int root, const char *path, int flags, unsigned long long resolve)
{
	struct open_how how = {.flags = (unsigned long long)(flags | O_CLOEXEC), .resolve = resolve};
	return (int)syscall(SYS_openat2, root, path, &how, sizeof how);
}

#define IN_ROOT (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)

/* An O_PATH fd of PATH resolved inside ROOT; with CREATE ("dir" or "file"), missing directories
 * are made (0755) and a missing last component as CREATE says. Every lookup starts again at the
 * root, so symlinks resolve exactly as inside the root and can never leave it. */
static int open_in_root(int root, const char *path, const char *create)
{
	int fd = openat2_in(root, path, O_PATH, IN_ROOT);
	if (fd >= 0 || errno != ENOENT || create == NULL)
		return fd;
	char buf[4096];
	if (snprintf(buf, sizeof buf, "/%s", path) >= (int)sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	char *p = buf;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		char *end = p;
		while (*end && *end != '/')
			end++;
		int last = 1;
		for (char *q = end; *q; q++)
			if (*q != '/')
				last = 0;
		char saved = *end;
		*end = '\0';
		int probe = openat2_in(root, buf, O_PATH, IN_ROOT);
		if (probe >= 0) {
			close(probe);
		} else if (errno == ENOENT) {
			char name[256];
			if (snprintf(name, sizeof name, "%s", p) >= (int)sizeof name) {
				errno = ENAMETOOLONG;
				return -1;
			}
			p[-1] = '\0'; /* buf is now the parent ("" for the root) */
			int parent = openat2_in(root, *buf ? buf : "/", O_RDONLY | O_DIRECTORY, IN_ROOT);
			p[-1] = '/';
			if (parent < 0)
				return -1;
			int rc;
			if (last && strcmp(create, "file") == 0) {
				rc = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
				if (rc >= 0)
					close(rc);
			} else {
				rc = mkdirat(parent, name, 0755);
			}
			int err = errno;
			close(parent);
			if (rc < 0 && err != EEXIST) {
				errno = err;
				return -1;
			}
		} else {
			return -1;
		}
		*end = saved;
		p = end;
	}
	return openat2_in(root, path, O_PATH, IN_ROOT);
}

static int mount_in_root(int root, const char *target, const char *src, const char *fstype,
			 unsigned long flags, const char *data, const char *create)
{
	int fd = open_in_root(root, target, create);
	if (fd < 0)
		fail(errno, "mount %s", target);
	char magic[64];
	snprintf(magic, sizeof magic, "/proc/self/fd/%d", fd);
	int rc = mount(src, magic, fstype, flags, data);
	int err = errno;
	close(fd);
	errno = err;
	return rc;
}

static void step_mount(int root)
{
	const char *target = next(), *src = next_opt(), *fstype = next_opt();
	unsigned long flags = (unsigned long)next_num();
	const char *data = next_opt(), *create = next_opt();
	if (root < 0)
		fail(EINVAL, "mount %s: no root in the plan", target);
	if (create != NULL && strcmp(create, "file-if-source") == 0) {
		struct stat st;
		if (src == NULL || (stat(src, &st) < 0 && errno == ENOENT))
			return;
		create = "file";
	}
	if (mount_in_root(root, target, src, fstype, flags, data, create) == 0)
		return;
	if ((errno == EPERM || errno == EACCES) && fstype && strcmp(fstype, "sysfs") == 0) {
		/* In a user namespace, sysfs mounts only for a network namespace it owns: bind the
		 * current /sys, read-only. */
		if (mount_in_root(root, target, "/sys", NULL, MS_BIND | MS_REC, NULL, NULL) == 0 &&
		    mount_in_root(root, target, NULL, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL,
				  NULL) == 0)
			return;
	}
	fail(errno, "mount %s", target);
}

static void step_symlink(int root)
{
	const char *path = next(), *target = next();
	char parent[4096];
	const char *slash = strrchr(path, '/');
	if (root < 0 || slash == NULL)
		fail(EINVAL, "symlink %s", path);
	snprintf(parent, sizeof parent, "%.*s", (int)(slash - path), path);
	int dir = openat2_in(root, *parent ? parent : "/", O_RDONLY | O_DIRECTORY, RESOLVE_IN_ROOT);
	if (dir < 0 || symlinkat(target, dir, slash + 1) < 0)
		fail(errno, "symlink %s", path);
	close(dir);
}

static void step_pivot(const char *root_path)
{
	if (root_path == NULL)
		fail(EINVAL, "pivot_root: no root in the plan");
	if (chdir(root_path) < 0)
		fail(errno, "chdir %s", root_path);
	/* the old root ends up stacked on "/": detach it at once */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		fail(errno, "pivot_root %s", root_path);
	if (umount2(".", MNT_DETACH) < 0)
		fail(errno, "detach the old root");
	if (chdir("/") < 0)
		fail(errno, "chdir /");
}

static void step_mask(void)
{
	const char *target = next(), *src = next_opt(), *fstype = next_opt();
	unsigned long flags = (unsigned long)next_num();
	const char *data = next_opt();
	struct stat st;
	if (lstat(target, &st) < 0)
		return; /* this kernel has nothing to hide there */
	if (mount(src, target, fstype, flags, data) < 0)
		fail(errno, "mask %s", target);
}

/* -- credentials --------------------------------------------------------------------------- */

static int cap_last_cap(void)
{
	char buf[16] = {0};
	int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 40;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	return n > 0 ? atoi(buf) : 40;
}

static void capget3(uint64_t *eff, uint64_t *perm, uint64_t *inh)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];
	if (syscall(SYS_capget, &hdr, data) < 0)
		fail(errno, "capget");
	*eff = data[0].effective | (uint64_t)data[1].effective << 32;
	*perm = data[0].permitted | (uint64_t)data[1].permitted << 32;
	*inh = data[0].inheritable | (uint64_t)data[1].inheritable << 32;
}

static void capset3(uint64_t eff, uint64_t perm, uint64_t inh)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {
		{(uint32_t)eff, (uint32_t)perm, (uint32_t)inh},
		{(uint32_t)(eff >> 32), (uint32_t)(perm >> 32), (uint32_t)(inh >> 32)},
	};
	if (syscall(SYS_capset, &hdr, data) < 0)
		fail(errno, "capset");
}

static void step_bounding(void)
{
	uint64_t keep = next_num();
	int last = cap_last_cap();
	for (int cap = 0; cap <= last && cap < 64; cap++)
		if (!(keep & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			fail(errno, "drop capability %d from the bounding set", cap);
}

static void step_ids(void)
{
	uid_t uid = (uid_t)next_num();
	gid_t gid = (gid_t)next_num();
	size_t n = (size_t)next_num();
	gid_t *groups = calloc(n ? n : 1, sizeof *groups);
	if (groups == NULL)
		fail(ENOMEM, "groups");
	for (size_t i = 0; i < n; i++)
		groups[i] = (gid_t)next_num();
	if (setgroups(n, groups) < 0)
		fail(errno, "setgroups");
	if (setresgid(gid, gid, gid) < 0)
		fail(errno, "setresgid %u", (unsigned)gid);
	if (setresuid(uid, uid, uid) < 0)
		fail(errno, "setresuid %u", (unsigned)uid);
	free(groups);
}

static void step_caps(void)
{
	uint64_t keep = next_num(), eff, perm, inh;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		fail(errno, "clear the ambient capabilities");
	capget3(&eff, &perm, &inh);
	capset3(eff & keep, perm & keep, inh & keep);
}

static void step_ambient(void)
{
	uint64_t mask = next_num(), eff, perm, inh;
	capget3(&eff, &perm, &inh);
	mask &= perm;
	capset3(mask, perm, mask);
	for (int cap = 0; cap < 64; cap++)
		if ((mask & (1ULL << cap)) &&
		    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			fail(errno, "raise ambient capability %d", cap);
}

/* -- seccomp ------------------------------------------------------------------------------- */

#ifndef RKT_APP_EXEC_BPF_ONLY
static const uint64_t clone_new_flags[] = {
	0x00000080, /* CLONE_NEWTIME */
	0x00020000, /* CLONE_NEWNS */
	0x02000000, /* CLONE_NEWCGROUP */
	0x04000000, /* CLONE_NEWUTS */
	0x08000000, /* CLONE_NEWIPC */
	0x10000000, /* CLONE_NEWUSER */
	0x20000000, /* CLONE_NEWPID */
	0x40000000, /* CLONE_NEWNET */
};
#define N_CLONE_FLAGS (sizeof clone_new_flags / sizeof clone_new_flags[0])

static void check(int rc, const char *what)
{
	if (rc < 0) /* libseccomp returns -errno */
		fail(-rc, "seccomp %s", what);
}

static int listed(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return 1;
	return 0;
}

/* Ending is never blocked: exit and exit_group run whatever the rules say (systemd's @default,
 * which rkt's filters had, keeps them too). A process denied them does not end with its status
 * but spins into a crash (glibc's _exit falls through to a faulting instruction), and app-exec
 * itself could not report a failed execve. */
static const char *const never_blocked[] = {"exit", "exit_group"};
#define N_NEVER_BLOCKED (sizeof never_blocked / sizeof never_blocked[0])

/* With RETAIN only NAMES run, otherwise NAMES are blocked; a blocked call fails with ERRNO.
 * Native architecture only: any other ABI (i386 through int 0x80, x32) hits the bad-arch
 * action, which kills the process. Names of another architecture's calls (vm86 here) are
 * skipped; a name libseccomp does not know at all (a typo, or a call newer than this
 * libseccomp) is refused, since the filter cannot do what it asks: allow it, or block it. So is
 * a filter that blocks execve, which starts the app. When unshare is blocked, clone with any
 * CLONE_NEW* flag fails too, and clone3 (whose flags a filter cannot read) fails with ENOSYS so
 * that libc falls back to clone. The planner sends NAMES sorted and unique. */
static scmp_filter_ctx build_filter(int retain, int err, const char **names, size_t n)
{
#define LISTED(name) listed(names, n, name)
#define BLOCKS(name) (LISTED(name) != retain)
	for (size_t i = 0; i < n; i++)
		if (seccomp_syscall_resolve_name(names[i]) == __NR_SCMP_ERROR)
			fail(0, "seccomp: unknown system call \"%s\" (not in libseccomp's tables)",
			     names[i]);
	if (BLOCKS("execve"))
		fail(0, "seccomp: the filter blocks execve, which starts the app");
	uint32_t blocked = SCMP_ACT_ERRNO((uint32_t)err);
	scmp_filter_ctx ctx = seccomp_init(retain ? blocked : SCMP_ACT_ALLOW);
	if (ctx == NULL)
		fail(ENOMEM, "seccomp_init");
	check(seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "attr");
	check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0), "attr"); /* the isolator's decision */
	/* The syscall numbers as a binary tree, not a chain of ~300 compares: the same decisions,
	 * but the kernel, which runs the filter for every syscall number when it is loaded (to
	 * cache the always-allowed ones), loads it in ~0.1 ms instead of ~0.4 ms of each app's
	 * start (docs/benchmarks.md). */
	check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2), "attr");
	int guard_ns = BLOCKS("unshare");
	for (size_t i = 0; i < n; i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);
		if (nr < 0)
			continue;
		if (guard_ns && (strcmp(names[i], "clone") == 0 || strcmp(names[i], "clone3") == 0))
			continue;
		if (!retain && listed(never_blocked, N_NEVER_BLOCKED, names[i]))
			continue;
		check(seccomp_rule_add_array(ctx, retain ? SCMP_ACT_ALLOW : blocked, nr, 0, NULL),
		      names[i]);
	}
	for (size_t i = 0; retain && i < N_NEVER_BLOCKED; i++) {
		const char *end = never_blocked[i];
		if (!LISTED(end))
			check(seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW,
						     seccomp_syscall_resolve_name(end), 0, NULL),
			      end);
	}
	if (guard_ns) {
		int clone_nr = seccomp_syscall_resolve_name("clone");
		if (!BLOCKS("clone") && clone_nr >= 0) {
			if (retain) {
				uint64_t all = 0;
				for (size_t i = 0; i < N_CLONE_FLAGS; i++)
					all |= clone_new_flags[i];
				struct scmp_arg_cmp cmp = {0, SCMP_CMP_MASKED_EQ, all, 0};
				check(seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, clone_nr, 1, &cmp),
				      "clone");
			} else {
				for (size_t i = 0; i < N_CLONE_FLAGS; i++) {
					uint64_t f = clone_new_flags[i];
					struct scmp_arg_cmp cmp = {0, SCMP_CMP_MASKED_EQ, f, f};
					check(seccomp_rule_add_array(ctx, blocked, clone_nr, 1, &cmp),
					      "clone");
				}
			}
		}
		int clone3_nr = seccomp_syscall_resolve_name("clone3");
		if (clone3_nr >= 0 && !BLOCKS("clone3"))
			check(seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(ENOSYS), clone3_nr, 0, NULL),
			      "clone3");
	}
	return ctx;
#undef BLOCKS
#undef LISTED
}

/* libseccomp's BPF for CTX, as the program exec loads. */
static struct sock_fprog *compile_filter(scmp_filter_ctx ctx)
{
	int fd = memfd_create("seccomp", MFD_CLOEXEC);
	if (fd < 0)
		fail(errno, "seccomp: memfd");
	check(seccomp_export_bpf(ctx, fd), "export");
	off_t len = lseek(fd, 0, SEEK_END);
	struct sock_fprog *prog = malloc(sizeof *prog);
	char *data = len > 0 ? malloc((size_t)len) : NULL;
	if (prog == NULL || data == NULL)
		fail(ENOMEM, "seccomp");
	if (len % (off_t)sizeof(struct sock_filter) != 0 ||
	    len / (off_t)sizeof(struct sock_filter) > 0xffff ||
	    pread(fd, data, (size_t)len, 0) != len)
		fail(EIO, "seccomp: export");
	close(fd);
	prog->len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
	prog->filter = (struct sock_filter *)(void *)data;
	return prog;
}

static struct sock_fprog *step_seccomp(void)
{
	int retain = (int)next_num(), err = (int)next_num();
	size_t n = (size_t)next_num();
	const char **names = calloc(n ? n : 1, sizeof *names);
	if (names == NULL)
		fail(ENOMEM, "seccomp");
	for (size_t i = 0; i < n; i++)
		names[i] = next();
	scmp_filter_ctx ctx = build_filter(retain, err, names, n);
	struct sock_fprog *prog = compile_filter(ctx);
	seccomp_release(ctx);
	free(names);
	return prog;
}

#else
/* The build linked into pod-init (musl, no libseccomp): pod-init hands a plan whose filter must
 * be compiled to the app-exec program instead (apps.h), so this is never reached from there. */
static struct sock_fprog *step_seccomp(void)
{
	fail(ENOTSUP, "seccomp: this build only loads compiled filters (seccomp-bpf)");
	return NULL;
}
#endif

/* A filter compiled beforehand (rkt's default, at `make setup`: rkt.stage1.ns.prebuilt), given
 * as the hex of its BPF instructions. */
static struct sock_fprog *step_seccomp_bpf(void)
{
	const char *hex = next();
	size_t n = strlen(hex), size = n / 2;
	if (n == 0 || n % (2 * sizeof(struct sock_filter)) != 0 ||
	    size / sizeof(struct sock_filter) > 0xffff)
		fail(EINVAL, "seccomp-bpf: not a BPF program");
	unsigned char *data = malloc(size);
	struct sock_fprog *prog = malloc(sizeof *prog);
	if (data == NULL || prog == NULL)
		fail(ENOMEM, "seccomp-bpf");
	for (size_t i = 0; i < size; i++) {
		unsigned int byte;
		if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
			fail(EINVAL, "seccomp-bpf: not hex");
		data[i] = (unsigned char)byte;
	}
	prog->len = (unsigned short)(size / sizeof(struct sock_filter));
	prog->filter = (struct sock_filter *)(void *)data;
	return prog;
}

/* -- exec ---------------------------------------------------------------------------------- */

static const char *find_executable(const char *name, char *const env[], char *buf, size_t len)
{
	if (strchr(name, '/'))
		return name;
	const char *path = "";
	for (char *const *e = env; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	for (const char *dir = path;; dir++) {
		const char *end = strchrnul(dir, ':');
		int dlen = (int)(end - dir);
		if (snprintf(buf, len, "%.*s/%s", dlen ? dlen : 1, dlen ? dir : ".", name) <
			(int)len) {
			struct stat st;
			if (access(buf, X_OK) == 0 && stat(buf, &st) == 0 && !S_ISDIR(st.st_mode))
				return buf;
		}
		if (*end == '\0')
			break;
		dir = end;
	}
	return NULL;
}

static void step_exec(struct sock_fprog *filter)
{
	const char *cwd = next();
	size_t argc = (size_t)next_num();
	char **argv = calloc(argc + 1, sizeof *argv);
	if (argv == NULL || argc == 0)
		fail(argc ? ENOMEM : EINVAL, "exec: no command");
	for (size_t i = 0; i < argc; i++)
		argv[i] = (char *)next();
	size_t envc = (size_t)next_num();
	char **env = calloc(envc + 1, sizeof *env);
	if (env == NULL)
		fail(ENOMEM, "exec");
	for (size_t i = 0; i < envc; i++)
		env[i] = (char *)next();
	if (more())
		fail(EINVAL, "the launch plan goes on after exec");
	if (chdir(cwd) < 0)
		fail(errno, "chdir %s", cwd);
	char buf[4096];
	const char *path = find_executable(argv[0], env, buf, sizeof buf);
	if (path == NULL) {
		dprintf(2, "%s: %s: executable not found in PATH\n", label, argv[0]);
		exit(127);
	}
	if (filter != NULL) /* last: the filter applies to the rest of this program */
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0U, filter) < 0)
			fail(errno, "seccomp load");
	if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
		for (int fd = 3; fd < 65536; fd++)
			close(fd);
	execve(path, argv, env);
	int err = errno;
	dprintf(2, "%s: %s: %s\n", label, path, cause(err));
	exit(err == ENOENT ? 127 : 126);
}

/* -- main ---------------------------------------------------------------------------------- */

/* Every disposition to the default, nothing blocked: what a program expects from execve. Through
 * the raw system calls, since libc's wrappers refuse the signals it reserves (32 and 33), and an
 * "ignored" inherited there would reach the app (execve keeps ignored dispositions). */
static void reset_signals(void)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		unsigned long mask;
	} dfl = {0}; /* SIG_DFL is 0 */
	for (int sig = 1; sig <= 64; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof dfl.mask);
	unsigned long none = 0;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none);
}

/* Tests: the BPF the plan's seccomp step would load (compared with pyseccomp's). */
static int export_bpf(void)
{
	while (more()) {
		const char *step = next();
		if (strcmp(step, "seccomp") == 0 || strcmp(step, "seccomp-bpf") == 0) {
			struct sock_fprog *prog =
				step[7] == '\0' ? step_seccomp() : step_seccomp_bpf();
			size_t len = prog->len * sizeof(struct sock_filter);
			const char *data = (const char *)prog->filter;
			while (len > 0) {
				ssize_t w = write(1, data, len);
				if (w <= 0)
					fail(errno, "export");
				data += w;
				len -= (size_t)w;
			}
			return 0;
		}
	}
	fail(EINVAL, "the plan has no seccomp step");
	return 1;
}

int main(int argc, char **argv)
{
	label = "stage1: app";
	plan_kind = "launch plan";
	if (argc == 3 && strcmp(argv[1], "--export-bpf") == 0) {
		read_plan(plan_fd(argv[2]));
		return export_bpf();
	}
	if (argc != 2) {
		dprintf(2, "usage: app-exec PLAN_FD\n");
		return 2;
	}
	reset_signals();
	read_plan(plan_fd(argv[1]));
	int root = -1;
	const char *root_path = NULL;
	struct sock_fprog *filter = NULL;
	while (more()) {
		const char *step = next();
		if (strcmp(step, "label") == 0) {
			label = next();
		} else if (strcmp(step, "write") == 0) {
			const char *path = next();
			write_file(path, next());
		} else if (strcmp(step, "oom-score-adj") == 0) {
			oom_score_adj(next());
		} else if (strcmp(step, "unshare") == 0) {
			if (unshare((int)next_num()) < 0)
				fail(errno, "unshare");
		} else if (strcmp(step, "root") == 0) {
			root_path = next();
			root = open(root_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (root < 0)
				fail(errno, "open %s", root_path);
		} else if (strcmp(step, "mount") == 0) {
			step_mount(root);
		} else if (strcmp(step, "await") == 0) {
			if (await_barrier((int)next_num()) < 0)
				exit(EXIT_SETUP_FAILED);
		} else if (strcmp(step, "symlink") == 0) {
			step_symlink(root);
		} else if (strcmp(step, "pivot") == 0) {
			if (root >= 0)
				close(root);
			root = -1;
			step_pivot(root_path);
		} else if (strcmp(step, "mask") == 0) {
			step_mask();
		} else if (strcmp(step, "bounding") == 0) {
			step_bounding();
		} else if (strcmp(step, "keepcaps") == 0) {
			if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
				fail(errno, "PR_SET_KEEPCAPS");
		} else if (strcmp(step, "nnp") == 0) {
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
				fail(errno, "PR_SET_NO_NEW_PRIVS");
		} else if (strcmp(step, "ids") == 0) {
			step_ids();
		} else if (strcmp(step, "caps") == 0) {
			step_caps();
		} else if (strcmp(step, "ambient") == 0) {
			step_ambient();
		} else if (strcmp(step, "seccomp") == 0 || strcmp(step, "seccomp-bpf") == 0) {
			if (filter != NULL)
				fail(EINVAL, "the launch plan has two seccomp steps");
			/* loaded by exec, after chdir and the PATH lookup */
			filter = step[7] == '\0' ? step_seccomp() : step_seccomp_bpf();
		} else if (strcmp(step, "exec") == 0) {
			step_exec(filter);
		} else {
			fail(EINVAL, "unknown launch step \"%s\"", step);
		}
	}
	fail(EINVAL, "the launch plan has no exec step");
	return EXIT_SETUP_FAILED;
}
