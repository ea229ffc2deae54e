/* apps.h: what pod-init and pod-supervisor both do for an app they start: spawn it through
 * app-exec (pod-init: through app-exec's code, linked in), find its pid as the host sees it,
 * write its status JSON (the layout of rkt.stage1.common.status.AppStatus) atomically, make its
 * root's mount point. Each function
 * reports a failure by returning -1 with errno set: pod-init fails the pod, the supervisor
 * answers the request. Static functions, included by each program (each is one static binary). */
#ifndef RKT_APPS_H
#define RKT_APPS_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/* The pid of our child PID as the host sees it, in OUT ("1234"): from a pidfd's fdinfo (/proc
 * here is still the host's procfs); the pid itself if that fails. */
static void host_pid_text(pid_t pid, char *out, size_t size)
{
	char path[64], buf[2048];
	snprintf(out, size, "%d", (int)pid);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return;
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	close(pidfd);
	if (n > 0) {
		buf[n] = '\0';
		char *line = strstr(buf, "\nPid:");
		if (line != NULL)
			snprintf(out, size, "%ld", strtol(line + 5, NULL, 10));
	}
}

/* A created or running app's status JSON in OUT; PID and STARTED may be NULL (null). App names
 * are appc ACNames ([a-z0-9-]): nothing to escape. Returns the length, or -1 if it is too long. */
static int status_json(char *out, size_t size, const char *name, const char *state,
		       const char *pid, const char *created, const char *started)
{
	int n = snprintf(out, size,
			 "{\"name\": \"%s\", \"state\": \"%s\", \"pid\": %s, \"created\": %s, "
			 "\"started\": %s, \"finished\": null, \"exit_code\": null, \"signal\": null, "
			 "\"oom_killed\": false}",
			 name, state, pid ? pid : "null", created, started ? started : "null");
	return n < 0 || n >= (int)size ? -1 : n;
}

/* PATH written atomically: a temp file beside it, then rename (readers see old or new). */
static int write_atomic_file(const char *path, const char *data, size_t len)
{
	char tmp[4096];
	const char *slash = strrchr(path, '/');
	int dir_len = slash ? (int)(slash - path + 1) : 0;
	if (snprintf(tmp, sizeof tmp, "%.*s.%s.%d.tmp", dir_len, path, path + dir_len,
		     (int)getpid()) >= (int)sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, data, len);
	int saved = errno;
	close(fd);
	if (n != (ssize_t)len) {
		unlink(tmp);
		errno = n < 0 ? saved : EIO;
		return -1;
	}
	return rename(tmp, path);
}

/* mkdir -p PATH (modified in place while it runs, restored after). */
static int mkdir_parents(char *path)
{
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		int rc = mkdir(path, 0755) < 0 && errno != EEXIST ? -1 : 0;
		*p = saved;
		if (rc < 0 || saved == '\0')
			return rc;
	}
}

#ifdef RKT_BUILTIN_APP_EXEC
#include <dirent.h>
#include <sys/prctl.h>

/* app-exec's code, linked into this program (the Makefile builds pod-init with app-exec.c, its
 * main renamed). An app whose launcher is the app-exec beside this program, from the same
 * build, runs that code in the forked process itself: the exec of app-exec and its start-up
 * are off the pod's start (docs/architecture.md, "Native resident processes"). */
int app_exec_main(int argc, char **argv);

/* Whether LAUNCHER is the app-exec in this program's own directory: LAUNCHER absolute, or
 * relative to the working directory (a --private-users pod's plan names its files from the pod
 * directory). Compared as text, without looking anything up (the --private-users helper may
 * not search the pod's parent directories); anything else, or anything we cannot compare, is
 * exec'd. */
static int launcher_is_builtin(const char *launcher)
{
	char self[4096], sibling[4096], cwd[4096], path[8192];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return 0;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash == NULL)
		return 0;
	*slash = '\0';
	if (snprintf(sibling, sizeof sibling, "%s/app-exec", self) >= (int)sizeof sibling)
		return 0;
	if (launcher[0] == '/')
		return strcmp(sibling, launcher) == 0;
	if (getcwd(cwd, sizeof cwd) == NULL ||
	    snprintf(path, sizeof path, "%s/%s", cwd, launcher) >= (int)sizeof path)
		return 0;
	return strcmp(sibling, path) == 0;
}

#ifdef RKT_APP_EXEC_BPF_ONLY
/* Whether the launch plan on FD names seccomp rules to compile (a "seccomp" step, which this
 * build of app-exec's code cannot do: no libseccomp): then the app-exec program runs it. Any
 * string "seccomp" in the plan counts (an argument that happens to be "seccomp" only costs the
 * exec); a plan we cannot read counts too. */
static int plan_compiles_filter(int fd)
{
	static char buf[1 << 20];
	ssize_t n = pread(fd, buf, sizeof buf, 0);
	if (n < 0 || n == (ssize_t)sizeof buf)
		return 1;
	for (ssize_t i = 0; i < n;) {
		const char *end = memchr(buf + i, '\0', (size_t)(n - i));
		if (end == NULL || strcmp(buf + i, "seccomp") == 0)
			return 1; /* (unterminated: app-exec refuses it with its own message) */
		i = end - buf + 1;
	}
	return 0;
}
#endif

/* What an exec would do to our descriptors: every close-on-exec one is closed. */
static void close_cloexec_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	if (dir == NULL)
		return;
	int own = dirfd(dir);
	struct dirent *entry;
	while ((entry = readdir(dir)) != NULL) {
		int fd = atoi(entry->d_name);
		if (fd <= 2 || fd == own || entry->d_name[0] == '.')
			continue;
		int flags = fcntl(fd, F_GETFD);
		if (flags >= 0 && (flags & FD_CLOEXEC))
			close(fd);
	}
	closedir(dir);
}
#endif

/* Fork the app NAME: its own session, /dev/null, OUT and ERR (pipes' write ends) as its stdio
 * unless INTERACTIVE (then it keeps ours), and exec LAUNCHER (app-exec) with the launch plan
 * PLAN on an inherited descriptor (or run app-exec's code in the fork: RKT_BUILTIN_APP_EXEC).
 * Returns its pid; the caller closes OUT and ERR. */
static pid_t spawn_app(const char *name, const char *launcher, const char *plan, int interactive,
		       int out, int err)
{
	int plan_fd = open(plan, O_RDONLY); /* inherited by app-exec */
	if (plan_fd < 0)
		return -1;
#ifdef RKT_BUILTIN_APP_EXEC
	int builtin = launcher_is_builtin(launcher);
#ifdef RKT_APP_EXEC_BPF_ONLY
	builtin = builtin && !plan_compiles_filter(plan_fd);
#endif
	fflush(NULL); /* nothing of ours is written twice by the child's exit() */
#endif
	int devnull = interactive ? -1 : open("/dev/null", O_RDONLY | O_CLOEXEC);
	pid_t pid = interactive || devnull >= 0 ? fork() : -1;
	if (pid == 0) {
		if (!interactive) {
			setsid(); /* its own session: the caller's terminal signals go to rkt, not here */
			if (dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
				_exit(254);
		}
		char fd_text[16];
		snprintf(fd_text, sizeof fd_text, "%d", plan_fd);
#ifdef RKT_BUILTIN_APP_EXEC
		if (builtin) {
			char *argv[] = {"app-exec", fd_text, NULL};
			close_cloexec_fds();
			prctl(PR_SET_NAME, "app-exec", 0, 0, 0);
			exit(app_exec_main(2, argv));
		}
#endif
		execl(launcher, "app-exec", fd_text, (char *)NULL);
		dprintf(2, "stage1: app \"%s\": exec %s: %s\n", name, launcher, strerror(errno));
		_exit(254);
	}
	int saved = errno;
	close(plan_fd);
	if (devnull >= 0)
		close(devnull);
	errno = saved;
	return pid;
}

#endif
