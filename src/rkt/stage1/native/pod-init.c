/* pod-init: starts an ordinary pod from a plan, for the ns flavor's run entrypoint.
 *
 * The Python run entrypoint (src/rkt/stage1/ns/run.py) resolves everything: the apps' launch
 * plans (written beside their specs), the pod and app cgroups (created, limits written), the
 * network (CNI left it in the pod's netns). It hands this program the pod plan on a file
 * descriptor, and this program does what needs the new namespaces:
 *
 *   - unshare the pod's namespaces, make every mount private, bring lo up (--net=none);
 *   - fork the pod init (PID 1 of the new pid namespace); this process then writes the `pid`
 *     file, lets the init go on, and exec's run-waiter (the caller's child for the pod's life).
 *     An ordinary pod's run process spawns this program before the plan is complete, with the
 *     steps above first (they are done while it resolves the apps), then the rest: the init is
 *     forked as the run process's child, which has exec'd run-waiter meanwhile, and this
 *     program exits ("parent", "fork-sibling");
 *   - the init: dies with its parent, joins the pod's cgroup, sets the hostname, mounts each
 *     app's overlay root, waits until `pid` is written, writes each app's "created" status,
 *     starts each app (output pipes, its own session, then app-exec with the app's launch plan:
 *     app-exec's own code, linked into this program, when the launcher is the app-exec beside
 *     it; apps.h),
 *     writes its "running" status with the host pid, marks the pod ready and exec's
 *     pod-supervisor with every app's pid, pipes and status paths.
 *
 * Like app-exec, this program makes no decision: it performs
 * the plan's steps in order and stops at the first that fails (one line on stderr, exit 254).
 *
 * usage: pod-init [--parent PID] PLAN_FD
 *        pod-init --pin-netns PATH
 *
 * --parent PID: the "parent" step (below) before the plan is read: a run process that dies
 * before it wrote the first step cannot leave a pod-init behind that reports an empty plan.
 *
 * The plan is performed as it is read: its first steps may be written while the rest is still
 * being made (the spawned start, "parent").
 *
 * The second form creates a new network namespace and pins it at PATH (a new empty file, bound
 * to the namespace), leaving the caller where it was: for the network attacher
 * (src/rkt/stage1/ns/network.py), so that no Python process loads ctypes for it. On failure
 * PATH is removed.
 *
 * The plan is NUL-terminated strings, a keyword and its arguments (as app-exec's):
 *
 *   label TEXT                     prefix of error messages
 *   netns FD                       join the network namespace FD refers to (the pod's CNI
 *                                  namespace, which the run process never entered), close FD
 *   unshare FLAGS                  unshare(2) (the pid namespace applies to the fork below)
 *   private                        mount --make-rprivate /
 *   unpin DIR                      detach our copies of the namespaces pinned under DIR (so no
 *                                  pod keeps another pod's network namespace alive)
 *   loopback                       set lo up (a new network namespace)
 *   userns SHIFT COUNT PID_R PID_W START_R START_W SKIP N CGROUP_FILE...
 *                                  (--private-users) fork the pod's helper, which joins the pod
 *                                  cgroup (writes "0" to each CGROUP_FILE) while host root,
 *                                  unshares a user namespace and waits; here: write its uid and
 *                                  gid maps (0 SHIFT COUNT), keep a descriptor of its namespace
 *                                  for "idmap", go on with the steps up to "userns-go". The
 *                                  helper, once released, becomes root of its namespace, skips
 *                                  the SKIP strings that follow the step (ours, up to and with
 *                                  "userns-child") and goes on. PID_R/START_W stay here, PID_W/
 *                                  START_R in the helper (its "fork-fds")
 *   idmap SOURCE TARGET            bind SOURCE (recursively) at TARGET, its ids mapped through
 *                                  the helper's namespace (TARGET made: a file if SOURCE is one)
 *   userns-go PID_FILE WAITER N ARG...
 *                                  release the helper, read the init's pid from PID_R, write
 *                                  PID_FILE, release the init (START_W) and exec WAITER with
 *                                  ARG..., the helper's pid and the init's
 *   userns-child                   where the helper goes on (the steps before it are ours)
 *   fork PID_FILE WAITER N ARG...  fork the init; here: write PID_FILE, release the init, exec
 *                                  WAITER with ARG... and the init's pid. The init goes on with:
 *   parent PID                     (a pod-init the run process spawned before its plan was
 *                                  complete, src/rkt/stage1/ns/start.py SpawnedInit) die
 *                                  (SIGKILL) with PID, our parent; exit at once, silently, if
 *                                  it is gone already
 *   fork-sibling PID_FILE PID_FD   (after "parent") fork the init as the run process's child
 *                                  (CLONE_PARENT): the run process exec's run-waiter meanwhile,
 *                                  which waits for it. Here: write PID_FILE, release the init,
 *                                  write its pid to PID_FD (run-waiter --spawned reads it) and
 *                                  exit 0. The init goes on as after "fork"
 *   fork-fds PID_FD GO_FD WAITER N ARG...
 *                                  the same, but the pid goes to PID_FD (the run process of a
 *                                  --private-users pod publishes it) and the init is released
 *                                  by whoever writes "1" to GO_FD
 *   pdeathsig                      die (SIGKILL) with the run process (after "fork-sibling":
 *                                  exit at once if it is gone already)
 *   write FILE DATA                (joining the pod cgroup)
 *   hostname NAME
 *   overlay TARGET DATA            mkdir -p TARGET, mount an overlayfs there
 *   bind TARGET                    bind TARGET onto itself (a root mounted before a user
 *                                  namespace's mount namespace is locked there: pivot_root
 *                                  needs a mount of the namespace's own)
 *   wait                           until the pid file is written (EOF: the parent died: exit)
 *   app NAME LAUNCHER PLAN STATUS JSON LOG OOM_FILE ROOT
 *                                  an app to start (LOG and OOM_FILE may be ""): recorded
 *   start INTERACTIVE              every app's "created" status, then each app started in order
 *   network FD ERRFILE             wait until the pod's network is up (the read end of the
 *                                  network attacher's barrier; the apps wait for it too, in
 *                                  app-exec). If it failed: "LABEL: " and ERRFILE's line on
 *                                  stderr, then exit 254 if no app was started, else no
 *                                  "listen" and no "ready": each app exits 254 at its own wait,
 *                                  and the supervisor records that and ends the pod
 *   listen SOCKET APPS_DIR         a mutable pod: the control socket (0600 in a 0700 dir),
 *                                  listening, handed to the supervisor with APPS_DIR
 *   ready PATH                     the symlink PATH -> "ready" (atomically)
 *   supervise PROGRAM              exec the supervisor with the apps
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <grp.h>
#include <time.h>
#include <unistd.h>

#ifndef OPEN_TREE_CLONE /* a libc without the mount API's wrappers (musl): the system calls,
			  * with the kernel's definitions (<linux/mount.h> clashes with musl's
			  * <sys/mount.h>) */
#include <linux/types.h>
#define OPEN_TREE_CLONE 1
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#define MOUNT_ATTR_IDMAP 0x00100000
struct mount_attr {
	__u64 attr_set;
	__u64 attr_clr;
	__u64 propagation;
	__u64 userns_fd;
};
static int open_tree(int dfd, const char *path, unsigned int flags)
{
	return (int)syscall(SYS_open_tree, dfd, path, flags);
}
static int mount_setattr(int dfd, const char *path, unsigned int flags, struct mount_attr *attr,
			 size_t size)
{
	return (int)syscall(SYS_mount_setattr, dfd, path, flags, attr, size);
}
static int move_mount(int from_dfd, const char *from, int to_dfd, const char *to,
		      unsigned int flags)
{
	return (int)syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags);
}
#endif

#include "handoff.h"
#include "plan.h"
#include "apps.h"

#define MAX_APPS 256

struct app {
	const char *name, *launcher, *plan, *status, *json, *log, *oom, *root;
	pid_t pid;
	int out, err; /* read ends of the output pipes, -1 when interactive */
	char pid_text[24], out_text[16], err_text[16], host_pid[24], created[24], started[24];
};
static struct app apps[MAX_APPS];
static int n_apps;
static int control_fd = -1;
static const char *apps_dir;

/* -- files ------------------------------------------------------------------------------------ */

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		fail(errno, "open %s", path);
	if (write(fd, data, len) != (ssize_t)len)
		fail(errno, "write %s", path);
	close(fd);
}

static void write_atomic(const char *path, const char *data, size_t len)
{
	if (write_atomic_file(path, data, len) < 0)
		fail(errno, "write %s", path);
}

static void mkdir_p(char *path)
{
	if (mkdir_parents(path) < 0)
		fail(errno, "mkdir %s", path);
}

/* -- the steps -------------------------------------------------------------------------------- */

static void loopback_up(void)
{
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {0};
	strcpy(ifr.ifr_name, "lo");
	if (sock < 0 || ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
		fail(errno, "lo");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
		fail(errno, "lo up");
	close(sock);
}

static void unpin(const char *dir)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192], point[4096];
	size_t len = strlen(dir);
	if (f == NULL)
		fail(errno, "/proc/self/mountinfo");
	while (fgets(line, sizeof line, f)) {
		/* ID PARENT MAJ:MIN ROOT MOUNT-POINT ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", point) == 1 &&
		    strncmp(point, dir, len) == 0 && point[len] == '/')
			umount2(point, MNT_DETACH); /* unpinned meanwhile by its own pod's gc: fine */
	}
	fclose(f);
}

static void write_one(int fd, const char *what)
{
	if (write(fd, "1", 1) != 1)
		fail(errno, "%s", what);
	close(fd);
}

/* The init's pid in PID_FILE, then the init released (GO: it waits for the "1" before its apps
 * start). Without the pid file stage0 cannot find the pod: the init reads EOF and exits. */
static void publish(const char *pid_file, const char *pid, int go)
{
	write_atomic(pid_file, pid, strlen(pid));
	write_one(go, "release the pod init");
}

static char **waiter_argv(const char **waiter, unsigned long long *argc)
{
	static char *argv[20];
	*waiter = next();
	*argc = next_num();
	if (*argc > 16)
		fail(EINVAL, "fork: %llu waiter arguments", *argc);
	for (unsigned long long i = 0; i < *argc; i++)
		argv[i] = (char *)next();
	return argv;
}

/* Fork the init. Returns in the init with the fd to read "1" from before the apps start; the
 * parent tells the run process the init's pid (it writes PID_FILE and releases the init itself,
 * or with fork-fds writes the pid to PID_FD and leaves the release to the run process, which
 * sends it on GO_FD) and exec's the waiter (never returns). */
static int fork_init(int with_fds)
{
	const char *pid_file = NULL, *waiter;
	int pid_fd = -1, go_fd = -1, go[2] = {-1, -1};
	unsigned long long argc;
	if (with_fds) {
		pid_fd = (int)next_num();
		go_fd = (int)next_num();
	} else {
		pid_file = next();
	}
	char **argv = waiter_argv(&waiter, &argc);
	if (!with_fds && pipe2(go, O_CLOEXEC) < 0)
		fail(errno, "pipe");
	pid_t pid = fork();
	if (pid < 0)
		fail(errno, "fork the pod init");
	if (pid == 0) {
		if (with_fds) {
			close(pid_fd);
			return go_fd;
		}
		close(go[1]);
		return go[0];
	}
	char text[24];
	int n = snprintf(text, sizeof text, "%d", (int)pid);
	if (with_fds) {
		close(go_fd);
		if (write(pid_fd, text, (size_t)n) != n)
			fail(errno, "tell the run process the init's pid");
		close(pid_fd);
	} else {
		close(go[0]);
		publish(pid_file, text, go[1]);
	}
	argv[argc] = text;
	execv(waiter, argv);
	fail(errno, "exec %s", waiter);
	return -1;
}

/* -- the spawned start: pod-init started by the run process before its plan was complete ---- */

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static int run_pidfd = -1; /* "parent": the run process, which spawned us (the init checks it
			    * is alive after its PR_SET_PDEATHSIG: "pdeathsig") */

/* Exit quietly (254) if the run process ("parent") has exited, or does within TIMEOUT_MS. */
static void exit_if_run_process_gone(int timeout_ms)
{
	if (run_pidfd < 0)
		return;
	struct pollfd p = {.fd = run_pidfd, .events = POLLIN};
	int rc;
	do
		rc = poll(&p, 1, timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc > 0)
		_exit(EXIT_SETUP_FAILED);
}

/* The plan ended before its last step (plan_cut). The run process writes it whole before it
 * closes the pipe, and kills us before it closes it on a refusal: so it died, and its exit
 * closed the pipe a moment before the kernel sends us the parent-death signal. Exit quietly once
 * its pidfd says it is gone (it said why, if it could); if it is not gone within a second, the
 * plan itself is wrong, and the caller reports it. */
static void run_process_gone(void)
{
	exit_if_run_process_gone(1000);
}

static void parent(pid_t pid)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		fail(errno, "PR_SET_PDEATHSIG");
	if (getppid() != pid)
		_exit(EXIT_SETUP_FAILED); /* the run process died meanwhile (it said why, if it could) */
	run_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (run_pidfd < 0)
		fail(errno, "pidfd_open %d", (int)pid);
	plan_cut = run_process_gone;
}

/* Fork the init as our parent's child (CLONE_PARENT): the run process (run-waiter by then)
 * waits for it as for the init "fork" makes. Returns in the init with the fd to read "1" from;
 * here: PID_FILE written, the init released, its pid written to PID_FD, exit 0.
 *
 * A raw clone, not fork(): the C library's fork() cannot ask for CLONE_PARENT. Its atfork
 * handlers (none here) do not run, and the init's libc keeps this process's thread id cached;
 * the init does not use it (no raise(), no threads) and replaces itself by exec. */
static int fork_sibling(void)
{
	const char *pid_file = next();
	int pid_fd = (int)next_num(), go[2];
	if (run_pidfd < 0)
		fail(EINVAL, "fork-sibling: no parent step before it");
	if (pipe2(go, O_CLOEXEC) < 0)
		fail(errno, "pipe");
	long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		fail(errno, "fork the pod init");
	if (pid == 0) {
		close(pid_fd);
		close(go[1]);
		return go[0];
	}
	close(go[0]);
	char text[24];
	int n = snprintf(text, sizeof text, "%ld", pid);
	publish(pid_file, text, go[1]);
	if (write(pid_fd, text, (size_t)n) != n)
		fail(errno, "tell run-waiter the init's pid");
	_exit(0);
}

static void wait_go(int go)
{
	char c = 0;
	ssize_t n;
	do
		n = read(go, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1 || c != '1')
		_exit(EXIT_SETUP_FAILED); /* the run process died before publishing the pod */
	close(go);
}

static void write_status(struct app *a, const char *state)
{
	char json[1024];
	int n = status_json(json, sizeof json, a->name, state, *a->host_pid ? a->host_pid : NULL,
			    a->created, *a->started ? a->started : NULL);
	if (n < 0)
		fail(ENAMETOOLONG, "status of %s", a->name);
	write_atomic(a->json, json, (size_t)n);
}

static void start_app(struct app *a, int interactive)
{
	int out[2] = {-1, -1}, err[2] = {-1, -1};
	if (!interactive && (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0))
		fail(errno, "pipe");
	a->pid = spawn_app(a->name, a->launcher, a->plan, interactive, out[1], err[1]);
	if (a->pid < 0)
		fail(errno, "start app %s (%s)", a->name, a->plan);
	a->out = out[0];
	a->err = err[0];
	if (!interactive) {
		close(out[1]);
		close(err[1]);
	}
	host_pid_text(a->pid, a->host_pid, sizeof a->host_pid);
	snprintf(a->started, sizeof a->started, "%lld", now_ns());
	write_status(a, "running");
}

static void start_apps(int interactive)
{
	for (int i = 0; i < n_apps; i++) {
		snprintf(apps[i].created, sizeof apps[i].created, "%lld", now_ns());
		write_status(&apps[i], "created");
	}
	for (int i = 0; i < n_apps; i++)
		start_app(&apps[i], interactive);
}

/* The control socket of a mutable pod: SOCKET (relative to the pod directory, the cwd: a pod
 * path may be longer than a sun_path), 0600 in a 0700 directory, listening. */
static void listen_control(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof addr.sun_path)
		fail(ENAMETOOLONG, "control socket %s", path);
	strcpy(addr.sun_path, path);
	char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
	if (slash != NULL) {
		*slash = '\0';
		mkdir_p(dir);
		if (chmod(dir, 0700) < 0)
			fail(errno, "chmod %s", dir);
	}
	free(dir);
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail(errno, "control socket");
	mode_t old = umask(0177);
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		fail(errno, "bind %s", path);
	umask(old);
	if (chmod(path, 0600) < 0 || listen(fd, 16) < 0)
		fail(errno, "listen on %s", path);
	control_fd = fd;
}

/* The "network" step: 0 when the pod's network is up; else report the attacher's error. */
static int network_up(int fd, const char *error_file)
{
	if (await_barrier(fd) == 0)
		return 0;
	char text[4096] = "the network attacher died";
	int efd = open(error_file, O_RDONLY | O_CLOEXEC);
	if (efd >= 0) {
		ssize_t n = read(efd, text, sizeof text - 1);
		if (n > 0) {
			text[n] = '\0';
			text[strcspn(text, "\n")] = '\0';
		}
		close(efd);
	}
	dprintf(2, "%s: %s\n", label, text);
	return -1;
}

static void ready(const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
	unlink(tmp);
	if (symlink("ready", tmp) < 0 || rename(tmp, path) < 0)
		fail(errno, "%s", path);
}

/* An output pipe's read end as the supervisor's argument ("-" for none), inherited by it. */
static char *pipe_arg(int fd, char *text, size_t size)
{
	if (fd < 0)
		return "-";
	fcntl(fd, F_SETFD, 0);
	snprintf(text, size, "%d", fd);
	return text;
}

/* exec the supervisor: 14 arguments per app (see pod-supervisor.c) */
static void supervise(const char *program, int interactive)
{
	char **argv = calloc((size_t)n_apps * 14 + 8, sizeof *argv), control_text[16];
	if (argv == NULL)
		fail(ENOMEM, "supervise");
	int k = 0;
	argv[k++] = "pod-supervisor";
	if (interactive)
		argv[k++] = "--interactive";
	if (control_fd >= 0) {
		argv[k++] = "--control";
		argv[k++] = pipe_arg(control_fd, control_text, sizeof control_text);
		argv[k++] = (char *)apps_dir;
	}
	argv[k++] = "--";
	for (int i = 0; i < n_apps; i++) {
		struct app *a = &apps[i];
		snprintf(a->pid_text, sizeof a->pid_text, "%d", (int)a->pid);
		argv[k++] = (char *)a->name;
		argv[k++] = a->pid_text;
		argv[k++] = pipe_arg(a->out, a->out_text, sizeof a->out_text);
		argv[k++] = pipe_arg(a->err, a->err_text, sizeof a->err_text);
		argv[k++] = (char *)(*a->log ? a->log : "-");
		argv[k++] = (char *)a->status;
		argv[k++] = (char *)a->json;
		argv[k++] = (char *)(*a->oom ? a->oom : "-");
		argv[k++] = a->host_pid;
		argv[k++] = a->created;
		argv[k++] = a->started;
		argv[k++] = (char *)(*a->root ? a->root : "-");
		argv[k++] = (char *)a->launcher;
		argv[k++] = (char *)a->plan;
	}
	argv[k] = NULL;
	execv(program, argv);
	fail(errno, "exec %s", program);
}

/* pod-init --pin-netns PATH: a new network namespace pinned at PATH; this process's own
 * namespace is left behind with the process (it exits). */
static int pin_netns(const char *path)
{
	label = "stage1: network namespace";
	int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0)
		fail(errno, "create %s", path);
	close(fd);
	if (unshare(CLONE_NEWNET) < 0 || mount("/proc/self/ns/net", path, NULL, MS_BIND, NULL) < 0) {
		int err = errno;
		unlink(path);
		fail(err, "pin a new network namespace at %s", path);
	}
	return 0;
}

/* -- --private-users: the helper in its user namespace, the idmapped roots ------------------- */

static int userns_fd = -1;                   /* the helper's user namespace (idmap) */
static pid_t helper_pid;
static int helper_go = -1, pid_r = -1, start_w = -1;

static void read_one(int fd, const char *what)
{
	char c = 0;
	ssize_t n;
	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1 || c != '1')
		fail(n < 0 ? errno : EPIPE, "%s", what);
	close(fd);
}

/* Returns in both: in the helper (released, root of its namespace) after "userns-child". */
static void fork_userns(void)
{
	char line[64], path[64];
	unsigned long long shift = next_num(), count = next_num();
	int pid_rd = (int)next_num(), pid_wr = (int)next_num();
	int start_rd = (int)next_num(), start_wr = (int)next_num();
	unsigned long long skip = next_num(), n = next_num();
	const char *cgroup_files[32];
	if (n > 32)
		fail(E2BIG, "userns: %llu cgroup files", n);
	for (unsigned long long i = 0; i < n; i++)
		cgroup_files[i] = next();
	int ready[2], go[2];
	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
		fail(errno, "pipe");
	pid_t pid = fork();
	if (pid < 0)
		fail(errno, "fork the pod's helper");
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		close(pid_rd);
		close(start_wr);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
			fail(errno, "PR_SET_PDEATHSIG");
		for (unsigned long long i = 0; i < n; i++) /* while host root: the pod is accounted */
			write_file(cgroup_files[i], "0", 1);
		if (unshare(CLONE_NEWUSER) < 0)
			fail(errno, "unshare the user namespace");
		write_one(ready[1], "tell the run process the user namespace is there");
		wait_go(go[0]); /* the run process failed or died: exit */
		if (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
			fail(errno, "become root of the user namespace");
		/* a credential change clears the parent-death signal (prctl(2)) */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
			fail(errno, "PR_SET_PDEATHSIG");
		if (getppid() == 1)
			_exit(EXIT_SETUP_FAILED); /* the run process died in between */
		const char *last = "";
		for (unsigned long long i = 0; i < skip; i++)
			last = next();
		if (strcmp(last, "userns-child") != 0)
			fail(EINVAL, "userns: the helper's steps do not start after %llu strings", skip);
		return;
	}
	close(ready[1]);
	close(go[0]);
	close(pid_wr);
	close(start_rd);
	helper_pid = pid;
	helper_go = go[1];
	pid_r = pid_rd;
	start_w = start_wr;
	read_one(ready[0], "the pod's helper died before its user namespace");
	int len = snprintf(line, sizeof line, "0 %llu %llu\n", shift, count);
	snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
	write_file(path, line, (size_t)len);
	snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
	write_file(path, line, (size_t)len);
	snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
	userns_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (userns_fd < 0)
		fail(errno, "open %s", path);
}

static void idmap(const char *source, char *target)
{
	struct stat st;
	if (userns_fd < 0)
		fail(EINVAL, "idmap: no userns step before it");
	if (stat(source, &st) < 0)
		fail(errno, "%s", source);
	if (S_ISDIR(st.st_mode)) {
		mkdir_p(target);
	} else {
		char *slash = strrchr(target, '/');
		if (slash != NULL && slash != target) {
			*slash = '\0';
			mkdir_p(target);
			*slash = '/';
		}
		int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			fail(errno, "create %s", target);
		close(fd);
	}
	int tree = open_tree(AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (tree < 0)
		fail(errno, "open_tree %s", source);
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (__u64)userns_fd};
	if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
		fail(errno, "idmap %s", source);
	if (move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		fail(errno, "mount %s at %s", source, target);
	close(tree);
}

/* Never returns: the run process becomes the waiter of the helper (which relays the pod's
 * status) and signals the init. */
static void userns_go(void)
{
	const char *pid_file = next(), *waiter;
	unsigned long long argc;
	char **argv = waiter_argv(&waiter, &argc);
	char text[24], helper_text[24];
	if (helper_go < 0)
		fail(EINVAL, "userns-go: no userns step before it");
	close(userns_fd);
	write_one(helper_go, "release the pod's helper");
	ssize_t got; /* one write of a few bytes: atomic on a pipe */
	do
		got = read(pid_r, text, sizeof text - 1);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		fail(errno, "read the init's pid");
	close(pid_r);
	if (got == 0)
		fail(EPIPE, "the pod init did not start");
	text[got] = '\0';
	publish(pid_file, text, start_w);
	snprintf(helper_text, sizeof helper_text, "%d", (int)helper_pid);
	argv[argc] = helper_text;
	argv[argc + 1] = text;
	argv[argc + 2] = NULL;
	execv(waiter, argv);
	fail(errno, "exec %s", waiter);
}

int main(int argc, char **argv)
{
	label = "stage1: pod init";
	plan_kind = "pod plan";
	if (argc == 3 && strcmp(argv[1], "--pin-netns") == 0)
		return pin_netns(argv[2]);
	const char *spawned_by = NULL;
	if (argc == 4 && strcmp(argv[1], "--parent") == 0) {
		spawned_by = argv[2];
		argv += 2;
		argc -= 2;
	}
	if (argc != 2) {
		dprintf(2, "usage: pod-init [--parent PID] PLAN_FD | --pin-netns PATH\n");
		return 2;
	}
	/* The stop signals and SIGCHLD stay blocked through both exec's below: a stop request sent
	 * meanwhile stays pending for the waiter or the supervisor (their signalfd). */
	sigset_t handoff;
	if (block_handoff_signals(&handoff) < 0)
		fail(errno, "block the stop signals");
	if (spawned_by != NULL) /* the "parent" step, before the plan: it may never come */
		parent((pid_t)atoi(spawned_by));
	stream_plan(plan_fd(argv[1]));
	int go = -1, interactive = 0, started = 0, network_failed = 0;
	while (more()) {
		const char *step = next();
		if (strcmp(step, "label") == 0) {
			label = next();
		} else if (strcmp(step, "netns") == 0) {
			int fd = (int)next_num();
			if (setns(fd, CLONE_NEWNET) < 0)
				fail(errno, "join the pod's network namespace");
			close(fd);
		} else if (strcmp(step, "unshare") == 0) {
			if (unshare((int)next_num()) < 0)
				fail(errno, "unshare");
		} else if (strcmp(step, "private") == 0) {
			if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
				fail(errno, "make / private");
		} else if (strcmp(step, "unpin") == 0) {
			unpin(next());
		} else if (strcmp(step, "loopback") == 0) {
			loopback_up();
		} else if (strcmp(step, "userns") == 0) {
			fork_userns();
		} else if (strcmp(step, "idmap") == 0) {
			const char *source = next();
			char *target = strdup(next());
			if (target == NULL)
				fail(ENOMEM, "idmap");
			idmap(source, target);
			free(target);
		} else if (strcmp(step, "userns-go") == 0) {
			userns_go();
		} else if (strcmp(step, "userns-child") == 0) {
			fail(EINVAL, "userns-child: no userns step before it");
		} else if (strcmp(step, "fork") == 0) {
			go = fork_init(0);
		} else if (strcmp(step, "fork-fds") == 0) {
			go = fork_init(1);
		} else if (strcmp(step, "parent") == 0) {
			parent((pid_t)next_num());
		} else if (strcmp(step, "fork-sibling") == 0) {
			go = fork_sibling();
		} else if (strcmp(step, "bind") == 0) {
			const char *target = next();
			if (mount(target, target, NULL, MS_BIND | MS_REC, NULL) < 0)
				fail(errno, "bind %s onto itself", target);
		} else if (strcmp(step, "pdeathsig") == 0) {
			/* (had the parent died already, the "wait" step reads EOF) */
			if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
				fail(errno, "PR_SET_PDEATHSIG");
			/* a spawned start's init: had the run process died before that, nobody waits for
			 * us (the pidfd stays open, close-on-exec, for the end of the plan) */
			exit_if_run_process_gone(0);
		} else if (strcmp(step, "write") == 0) {
			const char *path = next(), *data = next();
			write_file(path, data, strlen(data));
		} else if (strcmp(step, "hostname") == 0) {
			const char *name = next();
			if (sethostname(name, strlen(name)) < 0)
				fail(errno, "sethostname %s", name);
		} else if (strcmp(step, "overlay") == 0) {
			char *target = strdup(next());
			const char *data = next();
			if (target == NULL)
				fail(ENOMEM, "overlay");
			mkdir_p(target);
			/* nodev: images carry no device nodes, and one made in the root opens
			 * nothing (docs/security.md, "Devices") */
			if (mount("overlay", target, "overlay", MS_NODEV, data) < 0)
				fail(errno, "mount the overlay on %s", target);
			free(target);
		} else if (strcmp(step, "wait") == 0) {
			if (go < 0)
				fail(EINVAL, "wait: no fork before it");
			wait_go(go);
			go = -1;
		} else if (strcmp(step, "app") == 0) {
			if (n_apps == MAX_APPS)
				fail(E2BIG, "more than %d apps", MAX_APPS);
			struct app *a = &apps[n_apps++];
			a->name = next();
			a->launcher = next();
			a->plan = next();
			a->status = next();
			a->json = next();
			a->log = next();
			a->oom = next();
			a->root = next();
			a->out = a->err = -1;
		} else if (strcmp(step, "start") == 0) {
			interactive = next_num() != 0;
			start_apps(interactive);
			started = n_apps > 0;
		} else if (strcmp(step, "network") == 0) {
			int fd = (int)next_num();
			if (network_up(fd, next()) < 0) {
				if (!started)
					exit(EXIT_SETUP_FAILED);
				network_failed = 1;
			}
		} else if (strcmp(step, "listen") == 0) {
			const char *socket_path = next();
			apps_dir = next();
			if (!network_failed)
				listen_control(socket_path);
		} else if (strcmp(step, "ready") == 0) {
			const char *path = next();
			if (!network_failed)
				ready(path);
		} else if (strcmp(step, "supervise") == 0) {
			supervise(next(), interactive);
		} else {
			fail(EINVAL, "unknown pod plan step \"%s\"", step);
		}
	}
	run_process_gone();
	fail(EINVAL, "the pod plan has no supervise step");
	return EXIT_SETUP_FAILED;
}
