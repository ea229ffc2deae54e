/* pod-supervisor: the resident half of the ns flavor's pod init (PID 1 of the pod).
 *
 * The Python init (src/rkt/stage1/ns/init.py) mounts the apps' root filesystems and forks every
 * app; then it exec's this program, which keeps the pod running for as long as it lives:
 *
 *   - copies each app's stdout/stderr pipe to its own stdout/stderr (the caller's terminal) and,
 *     in the CRI log format, to the app's log file (docs/stage1-abi.md §2);
 *   - reaps every child (the apps, and orphans of the pod reparented to PID 1);
 *   - writes an app's exit status files when it exits (rkt/status/<app>, rkt/status/<app>.json);
 *   - ends the pod with rkt's semantics: the first app that fails stops the others (SIGTERM to
 *     its process group, SIGKILL to every process of the pod 10 s later), SIGTERM/SIGHUP (and
 *     SIGINT unless --interactive) stop the pod the same way; it exits with the status of the
 *     first app that failed, or 0, once every app has exited.
 *
 * It is C so that the pod's resident cost is a few hundred kB, not an interpreter (issue 3;
 * docs/architecture.md "Native resident processes"). Signals arrive through a signalfd: the
 * Python init blocks SIGTERM, SIGHUP, SIGINT and SIGCHLD before the exec, so one sent meanwhile
 * stays pending and is read here.
 *
 * usage: pod-supervisor [--interactive] -- APP...
 *   where each APP is 11 arguments: NAME PID OUT_FD ERR_FD LOG_PATH STATUS_PATH JSON_PATH
 *   OOM_FILE HOST_PID CREATED_NS STARTED_NS ("-" for an absent fd, path or number).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "handoff.h"

#define APP_ARGS 11
#define STOP_TIMEOUT_NS (10LL * 1000000000LL)
#define CHUNK 65536

struct stream {
	int fd;          /* read end of the app's pipe, -1 once closed */
	int target;      /* 1 or 2 */
	const char *name; /* "stdout" or "stderr" */
	struct app *app;
};

struct app {
	const char *name;
	pid_t pid;
	int running;
	int log_fd;
	const char *status_path, *json_path, *oom_file, *host_pid, *created, *started;
};

static struct app *apps;
static struct stream *streams;
static int n_apps, n_streams, running_apps, first_failure = -1;
static long long kill_deadline; /* CLOCK_MONOTONIC ns, 0 = none */

static void die(const char *what)
{
	dprintf(2, "stage1: pod supervisor: %s: %s\n", what, strerror(errno));
	exit(254);
}

static long long now_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int parse_fd(const char *s)
{
	return strcmp(s, "-") == 0 ? -1 : atoi(s);
}

static int is_set(const char *s)
{
	return s != NULL && strcmp(s, "-") != 0;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd p = {.fd = fd, .events = POLLOUT};
				poll(&p, 1, -1);
				continue;
			}
			return; /* EPIPE, EIO, ...: nobody reads this copy any more */
		}
		buf += n;
		len -= (size_t)n;
	}
}

/* Write a file atomically: a temp file beside it, then rename (readers see old or new). */
static void write_atomic(const char *path, const char *data, size_t len)
{
	char tmp[4096];
	const char *slash = strrchr(path, '/');
	int dir_len = slash ? (int)(slash - path + 1) : 0;
	if (snprintf(tmp, sizeof tmp, "%.*s.%s.%d.tmp", dir_len, path, path + dir_len,
		     (int)getpid()) >= (int)sizeof tmp)
		return;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		dprintf(2, "stage1: pod supervisor: %s: %s\n", tmp, strerror(errno));
		return;
	}
	write_all(fd, data, len);
	close(fd);
	if (rename(tmp, path) < 0)
		dprintf(2, "stage1: pod supervisor: %s: %s\n", path, strerror(errno));
}

/* The "oom_kill N" counter of a cgroup v1 memory.oom_control or v2 memory.events file. */
static int oom_killed(const struct app *a)
{
	char buf[4096];
	if (!is_set(a->oom_file))
		return 0;
	int fd = open(a->oom_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (char *line = buf; line != NULL; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (strncmp(line, "oom_kill ", 9) == 0)
			return atoll(line + 9) > 0;
	}
	return 0;
}

static void app_exited(struct app *a, int wait_status)
{
	int code, sig = 0;
	char text[32], json[1024];
	if (WIFSIGNALED(wait_status)) {
		sig = WTERMSIG(wait_status);
		code = 128 + sig;
	} else {
		code = WEXITSTATUS(wait_status);
	}
	int oom = oom_killed(a);
	long long finished = now_ns(CLOCK_REALTIME);
	int n = snprintf(text, sizeof text, "%d", code);
	write_atomic(a->status_path, text, (size_t)n);
	char sigtext[16] = "null";
	if (sig)
		snprintf(sigtext, sizeof sigtext, "%d", sig);
	/* App names are appc ACNames ([a-z0-9-]): nothing to escape. */
	n = snprintf(json, sizeof json,
		     "{\"name\": \"%s\", \"state\": \"exited\", \"pid\": %s, \"created\": %s, "
		     "\"started\": %s, \"finished\": %lld, \"exit_code\": %d, \"signal\": %s, "
		     "\"oom_killed\": %s}",
		     a->name, is_set(a->host_pid) ? a->host_pid : "null",
		     is_set(a->created) ? a->created : "0", is_set(a->started) ? a->started : "null",
		     finished, code, sigtext, oom ? "true" : "false");
	if (n > 0 && n < (int)sizeof json)
		write_atomic(a->json_path, json, (size_t)n);
	a->running = 0;
	running_apps--;
	if (code != 0 && first_failure < 0)
		first_failure = code;
}

static void stop_apps(void)
{
	for (int i = 0; i < n_apps; i++) {
		if (!apps[i].running)
			continue;
		/* the app and whatever it started (each app leads its own session) */
		if (kill(-apps[i].pid, SIGTERM) < 0)
			kill(apps[i].pid, SIGTERM);
	}
	kill_deadline = now_ns(CLOCK_MONOTONIC) + STOP_TIMEOUT_NS;
}

static void reap(void)
{
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid <= 0)
			return;
		for (int i = 0; i < n_apps; i++) {
			if (apps[i].running && apps[i].pid == pid) {
				app_exited(&apps[i], st);
				if (first_failure > 0 && kill_deadline == 0)
					stop_apps();
				break;
			}
		}
		/* anything else is an orphan of the pod, reparented to us: reaped, nothing to record */
	}
}

/* "2006-01-02T15:04:05.999999999Z" */
static int rfc3339_nano(char *out, size_t size)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
	return (int)n + snprintf(out + n, size - n, ".%09ldZ", ts.tv_nsec);
}

/* The CRI log entries of one chunk: a line per entry, "F" for a full line, "P" for a tail. */
static void write_log(int log_fd, const char *stream, const char *data, size_t len)
{
	char stamp[64];
	if (log_fd < 0)
		return;
	int stamp_len = rfc3339_nano(stamp, sizeof stamp);
	size_t lines = 1;
	for (size_t i = 0; i < len; i++)
		lines += data[i] == '\n';
	size_t cap = len + lines * (size_t)(stamp_len + 16);
	char *out = malloc(cap), *p = out;
	if (out == NULL)
		return;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		int full = i < len && data[i] == '\n';
		if (!full && !(i == len && i > start))
			continue;
		p += sprintf(p, "%s %s %c ", stamp, stream, full ? 'F' : 'P');
		memcpy(p, data + start, i - start);
		p += i - start;
		*p++ = '\n';
		start = i + 1;
	}
	write_all(log_fd, out, (size_t)(p - out)); /* a full disk must not stop the pod */
	free(out);
}

/* Copy what is in one pipe; returns 0 once it is at EOF (and closed). */
static int copy_output(struct stream *s, int drain)
{
	static char buf[CHUNK];
	for (;;) {
		ssize_t n = read(s->fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 1;
		if (n <= 0) {
			close(s->fd);
			s->fd = -1;
			return 0;
		}
		write_all(s->target, buf, (size_t)n);
		write_log(s->app->log_fd, s->name, buf, (size_t)n);
		if (!drain)
			return 1;
	}
}

static void parse_apps(int argc, char **argv)
{
	if (argc % APP_ARGS != 0) {
		dprintf(2, "stage1: pod supervisor: %d app arguments, not a multiple of %d\n", argc,
			APP_ARGS);
		exit(254);
	}
	n_apps = argc / APP_ARGS;
	apps = calloc((size_t)n_apps + 1, sizeof *apps);
	streams = calloc(2 * (size_t)n_apps + 1, sizeof *streams);
	if (apps == NULL || streams == NULL)
		die("calloc");
	for (int i = 0; i < n_apps; i++) {
		char **a = argv + i * APP_ARGS;
		struct app *app = &apps[i];
		app->name = a[0];
		app->pid = (pid_t)atoi(a[1]);
		app->running = 1;
		app->log_fd = -1;
		app->status_path = a[5];
		app->json_path = a[6];
		app->oom_file = a[7];
		app->host_pid = a[8];
		app->created = a[9];
		app->started = a[10];
		if (is_set(a[4])) {
			app->log_fd = open(a[4], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
			if (app->log_fd < 0)
				dprintf(2, "stage1: pod supervisor: %s: %s\n", a[4], strerror(errno));
		}
		const char *names[2] = {"stdout", "stderr"};
		for (int k = 0; k < 2; k++) {
			int fd = parse_fd(a[2 + k]);
			if (fd < 0)
				continue;
			fcntl(fd, F_SETFD, FD_CLOEXEC);
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
			streams[n_streams++] = (struct stream){fd, k + 1, names[k], app};
		}
		running_apps++;
	}
}

int main(int argc, char **argv)
{
	int interactive = 0, i = 1;
	for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--interactive") == 0)
			interactive = 1;
		else {
			dprintf(2, "stage1: pod supervisor: unknown option %s\n", argv[i]);
			return 254;
		}
	}
	if (i == argc) {
		dprintf(2, "usage: pod-supervisor [--interactive] -- APP...\n");
		return 254;
	}
	sigset_t mask;
	if (block_handoff_signals(&mask) < 0)
		die("sigprocmask");
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		die("signalfd");
	signal(SIGPIPE, SIG_IGN);
	parse_apps(argc - i - 1, argv + i + 1);

	int stop_requested = 0;
	struct pollfd *pfds = calloc((size_t)n_streams + 1, sizeof *pfds);
	struct stream **owners = calloc((size_t)n_streams + 1, sizeof *owners);
	if (pfds == NULL || owners == NULL)
		die("calloc");
	reap(); /* children that ended before the exec */
	while (running_apps > 0) {
		int n = 0;
		pfds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		for (int k = 0; k < n_streams; k++) {
			if (streams[k].fd >= 0) {
				owners[n] = &streams[k];
				pfds[n++] = (struct pollfd){.fd = streams[k].fd, .events = POLLIN};
			}
		}
		int timeout = -1;
		if (kill_deadline) {
			long long left = (kill_deadline - now_ns(CLOCK_MONOTONIC)) / 1000000;
			timeout = left < 0 ? 0 : (int)left;
		}
		if (poll(pfds, (nfds_t)n, timeout) < 0 && errno != EINTR)
			die("poll");
		if (pfds[0].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == sizeof si) {
				if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGHUP ||
				    (si.ssi_signo == SIGINT && !interactive))
					stop_requested = 1;
			}
		}
		for (int k = 1; k < n; k++) {
			if (pfds[k].revents)
				copy_output(owners[k], 0);
		}
		reap();
		if (stop_requested && kill_deadline == 0)
			stop_apps();
		if (kill_deadline && now_ns(CLOCK_MONOTONIC) >= kill_deadline) {
			kill(-1, SIGKILL); /* as PID 1: every other process of the pod */
			kill_deadline = now_ns(CLOCK_MONOTONIC) + STOP_TIMEOUT_NS;
		}
	}
	for (int k = 0; k < n_streams; k++) {
		if (streams[k].fd >= 0)
			copy_output(&streams[k], 1);
	}
	return first_failure > 0 ? first_failure : 0;
}
