/* pod-supervisor: the resident half of the ns flavor's pod init (PID 1 of the pod).
 *
 * The pod init (pod-init's child, pod-init.c) mounts the apps' root filesystems and forks every
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
 * A mutable pod (`rkt app sandbox`, --control) is served here as well: pod-init hands over the
 * listening control socket (src/rkt/stage1/common/control.py: one JSON line each way) and this
 * program runs the requests of the app entrypoints in the pod's namespaces:
 *
 *   - add NAME: the entrypoint has resolved the app and written APPS_DIR/NAME.add (the "overlay"
 *     and "app" steps of a pod plan, see pod-init.c) and the app's launch plan; mount its root,
 *     record it, write its "created" status;
 *   - start NAME: start it (again, once exited) through app-exec, as pod-init starts apps;
 *   - stop NAME: SIGTERM to its process group, SIGKILL 10 s later; answered once it has exited;
 *   - rm NAME: stopped first if it runs; its root unmounted and the app forgotten (the
 *     entrypoint then removes its files and cgroup).
 *
 * An app's exit does not end a mutable pod; a stop signal does (status 0). Request lines are
 * read as they arrive, from the poll loop: a slow client never holds up the pod.
 *
 * It is C so that the pod's resident cost is a few hundred kB, not an interpreter (issue 3;
 * docs/architecture.md "Native resident processes"). Signals arrive through a signalfd: the
 * pod init (pod-init) blocks SIGTERM, SIGHUP, SIGINT and SIGCHLD before the exec, so one sent
 * meanwhile stays pending and is read here.
 *
 * usage: pod-supervisor [--interactive] [--control FD APPS_DIR] -- APP...
 *   where each APP is 14 arguments: NAME PID OUT_FD ERR_FD LOG_PATH STATUS_PATH JSON_PATH
 *   OOM_FILE HOST_PID CREATED_NS STARTED_NS ROOT LAUNCHER PLAN ("-" for an absent fd, path or
 *   number; ROOT, LAUNCHER and PLAN are what a mutable pod's rm and start need).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "handoff.h"
#include "apps.h"

#define APP_ARGS 14
#define MAX_APPS 256
#define MAX_WAITERS 8
#define MAX_LINE 4096
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
	int running; /* its process lives */
	int present; /* in the pod (a mutable pod's rm takes it out) */
	int log_fd;
	const char *status_path, *json_path, *oom_file, *host_pid, *created, *started;
	const char *root, *launcher, *plan, *log_path; /* "-" when unknown */
	char host_pid_buf[24], created_buf[24], started_buf[24];
	long long kill_at; /* CLOCK_MONOTONIC ns of the SIGKILL after a stop request, 0 = none */
	int waiters[MAX_WAITERS]; /* control connections answered when it has exited */
	char waiter_rm[MAX_WAITERS];
	int n_waiters;
};

static struct app apps[MAX_APPS];
static struct stream streams[2 * MAX_APPS];
static int n_apps, n_streams, running_apps, first_failure = -1, interactive;
static long long kill_deadline; /* CLOCK_MONOTONIC ns, 0 = none */
static int mutable_pod, control_fd = -1, stop_requested;
static const char *apps_dir;

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

static void write_atomic(const char *path, const char *data, size_t len)
{
	if (write_atomic_file(path, data, len) < 0) /* a full disk must not stop the pod */
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
	if (code != 0 && first_failure < 0 && !mutable_pod)
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

static void answer_waiters(struct app *a);

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
				answer_waiters(&apps[i]);
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
	if (n_apps > MAX_APPS) {
		dprintf(2, "stage1: pod supervisor: more than %d apps\n", MAX_APPS);
		exit(254);
	}
	for (int i = 0; i < n_apps; i++) {
		char **a = argv + i * APP_ARGS;
		struct app *app = &apps[i];
		app->name = a[0];
		app->pid = (pid_t)atoi(a[1]);
		app->running = 1;
		app->present = 1;
		app->log_fd = -1;
		app->status_path = a[5];
		app->json_path = a[6];
		app->oom_file = a[7];
		app->host_pid = a[8];
		app->created = a[9];
		app->started = a[10];
		app->root = a[11];
		app->launcher = a[12];
		app->plan = a[13];
		app->log_path = a[4];
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

/* -- a mutable pod's control socket ------------------------------------------------------------ */

static void app_status_json(struct app *a, const char *state)
{
	char json[1024];
	int n = status_json(json, sizeof json, a->name, state,
			    is_set(a->host_pid) ? a->host_pid : NULL,
			    is_set(a->created) ? a->created : "0",
			    is_set(a->started) ? a->started : NULL);
	if (n > 0)
		write_atomic(a->json_path, json, (size_t)n);
}

/* One JSON line back, then the connection is closed. ERROR NULL: {"ok": true}. */
static void reply(int fd, const char *error)
{
	char line[MAX_LINE];
	int n;
	if (error == NULL) {
		n = snprintf(line, sizeof line, "{\"ok\": true}\n");
	} else {
		char text[MAX_LINE / 2];
		size_t k = 0;
		for (const char *p = error; *p && k + 7 < sizeof text; p++) {
			unsigned char c = (unsigned char)*p;
			if (c == '"' || c == '\\') {
				text[k++] = '\\';
				text[k++] = (char)c;
			} else if (c < 0x20) {
				k += (size_t)snprintf(text + k, sizeof text - k, "\\u%04x", c);
			} else {
				text[k++] = (char)c;
			}
		}
		text[k] = '\0';
		n = snprintf(line, sizeof line, "{\"ok\": false, \"error\": \"%s\"}\n", text);
	}
	write_all(fd, line, (size_t)n);
	close(fd);
}

/* The string value of "KEY" in a one-line JSON object (no escapes: actions and app names). */
static int json_field(const char *line, const char *key, char *out, size_t size)
{
	char quoted[32];
	snprintf(quoted, sizeof quoted, "\"%s\"", key);
	const char *p = strstr(line, quoted);
	if (p == NULL)
		return -1;
	p += strlen(quoted);
	while (*p == ' ')
		p++;
	if (*p++ != ':')
		return -1;
	while (*p == ' ')
		p++;
	if (*p++ != '"')
		return -1;
	size_t n = 0;
	for (; *p && *p != '"'; p++) {
		if (*p == '\\' || n + 1 >= size)
			return -1;
		out[n++] = *p;
	}
	out[n] = '\0';
	return *p == '"' ? 0 : -1;
}

/* An appc app name ([a-z0-9]+ joined by single - . _ ~): safe in a path. */
static int valid_name(const char *s)
{
	int alnum_before = 0;
	if (*s == '\0')
		return 0;
	for (; *s; s++) {
		int alnum = (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9');
		if (!alnum && (!strchr("-._~", *s) || !alnum_before))
			return 0;
		alnum_before = alnum;
	}
	return alnum_before;
}

static struct app *find_app(const char *name)
{
	for (int i = 0; i < n_apps; i++)
		if (apps[i].present && strcmp(apps[i].name, name) == 0)
			return &apps[i];
	return NULL;
}

/* A slot for a new app: a removed app's, once no stream of it is open any more. */
static struct app *free_slot(void)
{
	for (int i = 0; i < n_apps; i++) {
		if (apps[i].present || apps[i].running)
			continue;
		int busy = 0;
		for (int k = 0; k < n_streams; k++)
			busy |= streams[k].fd >= 0 && streams[k].app == &apps[i];
		if (!busy)
			return &apps[i];
	}
	return n_apps < MAX_APPS ? &apps[n_apps++] : NULL;
}

/* add: APPS_DIR/NAME.add holds "overlay TARGET DATA app NAME LAUNCHER PLAN STATUS JSON LOG OOM
 * ROOT" (the steps of a pod plan, NUL-terminated strings, after an optional "label TEXT"; ROOT is
 * TARGET). Returns an error or NULL. */
static const char *add_app(const char *name, char *error, size_t size)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s.add", apps_dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(error, size, "app \"%s\": its launch record is missing (%s)", name,
			 strerror(errno));
		return error;
	}
	char *buf = malloc(65536); /* kept: the app's strings point into it */
	ssize_t len = buf == NULL ? -1 : read(fd, buf, 65535);
	close(fd);
	if (len <= 0 || buf[len - 1] != '\0') {
		free(buf);
		snprintf(error, size, "app \"%s\": its launch record is unreadable", name);
		return error;
	}
	const char *tok[16];
	int n = 0;
	for (char *p = buf; p < buf + len && n < 16; p += strlen(p) + 1)
		tok[n++] = p;
	int k = (n > 0 && strcmp(tok[0], "label") == 0) ? 2 : 0;
	if (n - k != 12 || strcmp(tok[k], "overlay") != 0 || strcmp(tok[k + 3], "app") != 0 ||
	    strcmp(tok[k + 4], name) != 0 || strcmp(tok[k + 11], tok[k + 1]) != 0) {
		free(buf);
		snprintf(error, size, "app \"%s\": its launch record is malformed", name);
		return error;
	}
	struct app *a = free_slot();
	if (a == NULL) {
		free(buf);
		snprintf(error, size, "app \"%s\": the pod has %d apps already", name, MAX_APPS);
		return error;
	}
	char *target = (char *)tok[k + 1];
	mkdir_parents(target); /* (a failure shows in the mount's) */
	if (mount("overlay", target, "overlay", MS_NODEV, tok[k + 2]) < 0) { /* as pod-init's */
		snprintf(error, size, "app \"%s\": mount its root: %s", name, strerror(errno));
		free(buf);
		if (a == &apps[n_apps - 1])
			n_apps--;
		return error;
	}
	*a = (struct app){.name = tok[k + 4], .present = 1, .log_fd = -1, .root = target,
			  .launcher = tok[k + 5], .plan = tok[k + 6], .status_path = tok[k + 7],
			  .json_path = tok[k + 8], .log_path = *tok[k + 9] ? tok[k + 9] : "-",
			  .oom_file = *tok[k + 10] ? tok[k + 10] : "-", .host_pid = "-",
			  .started = "-"};
	snprintf(a->created_buf, sizeof a->created_buf, "%lld", now_ns(CLOCK_REALTIME));
	a->created = a->created_buf;
	app_status_json(a, "created");
	return NULL;
}

/* start: output pipes, its own session, app-exec with the launch plan (as pod-init does). */
static const char *start_app(struct app *a, char *error, size_t size)
{
	int out[2] = {-1, -1}, err[2] = {-1, -1};
	if (!is_set(a->launcher) || !is_set(a->plan)) {
		snprintf(error, size, "app \"%s\": cannot be started again", a->name);
		return error;
	}
	if (n_streams + 2 > 2 * MAX_APPS) { /* reuse closed stream slots */
		int k = 0;
		for (int i = 0; i < n_streams; i++)
			if (streams[i].fd >= 0)
				streams[k++] = streams[i];
		n_streams = k;
	}
	if (!interactive && (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)) {
		snprintf(error, size, "app \"%s\": pipe: %s", a->name, strerror(errno));
		return error;
	}
	/* an app started again: its last run's exit status no longer describes it */
	if (is_set(a->status_path) && unlink(a->status_path) < 0 && errno != ENOENT) {
		snprintf(error, size, "app \"%s\": %s: %s", a->name, a->status_path, strerror(errno));
		if (!interactive) {
			close(out[0]), close(out[1]), close(err[0]), close(err[1]);
		}
		return error;
	}
	pid_t pid = spawn_app(a->name, a->launcher, a->plan, interactive, out[1], err[1]);
	int saved = errno;
	if (!interactive) {
		close(out[1]);
		close(err[1]);
	}
	if (pid < 0) {
		if (!interactive) {
			close(out[0]);
			close(err[0]);
		}
		snprintf(error, size, "app \"%s\": start %s: %s", a->name, a->plan, strerror(saved));
		return error;
	}
	a->pid = pid;
	a->running = 1;
	running_apps++;
	if (a->log_fd < 0 && is_set(a->log_path))
		a->log_fd = open(a->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	const char *names[2] = {"stdout", "stderr"};
	int fds[2] = {out[0], err[0]};
	for (int k = 0; k < 2 && !interactive; k++) {
		fcntl(fds[k], F_SETFL, fcntl(fds[k], F_GETFL) | O_NONBLOCK);
		streams[n_streams++] = (struct stream){fds[k], k + 1, names[k], a};
	}
	host_pid_text(a->pid, a->host_pid_buf, sizeof a->host_pid_buf);
	a->host_pid = a->host_pid_buf;
	snprintf(a->started_buf, sizeof a->started_buf, "%lld", now_ns(CLOCK_REALTIME));
	a->started = a->started_buf;
	app_status_json(a, "running");
	return NULL;
}

static void terminate(struct app *a)
{
	if (a->kill_at)
		return;
	if (kill(-a->pid, SIGTERM) < 0) /* the app and whatever it started */
		kill(a->pid, SIGTERM);
	a->kill_at = now_ns(CLOCK_MONOTONIC) + STOP_TIMEOUT_NS;
}

static void remove_app(struct app *a)
{
	if (is_set(a->root))
		umount2(a->root, MNT_DETACH);
	if (a->log_fd >= 0)
		close(a->log_fd);
	a->log_fd = -1;
	a->present = 0;
}

static void answer_waiters(struct app *a)
{
	a->kill_at = 0;
	for (int i = 0; i < a->n_waiters; i++) {
		if (a->waiter_rm[i] && a->present)
			remove_app(a);
		reply(a->waiters[i], NULL);
	}
	a->n_waiters = 0;
}

static const char *app_error(char *error, size_t size, const char *name, const char *what)
{
	snprintf(error, size, "app \"%s\": %s", name, what);
	return error;
}

static void run_request(int conn, const char *line)
{
	char action[16], name[256], error[1024];
	if (json_field(line, "action", action, sizeof action) < 0 ||
	    json_field(line, "app", name, sizeof name) < 0) {
		reply(conn, "control: malformed request");
		return;
	}
	if (!valid_name(name)) {
		reply(conn, "control: not an app name");
		return;
	}
	struct app *a = find_app(name);
	int add = strcmp(action, "add") == 0, start = strcmp(action, "start") == 0;
	int stop = strcmp(action, "stop") == 0, rm = strcmp(action, "rm") == 0;
	const char *failed = NULL;
	if (!add && !start && !stop && !rm)
		failed = "control: unknown action";
	else if ((add || start) && stop_requested)
		failed = "pod is stopping";
	else if (add)
		failed = a != NULL ? app_error(error, sizeof error, name, "is already in the pod")
				   : add_app(name, error, sizeof error);
	else if (a == NULL)
		failed = app_error(error, sizeof error, name, "is not in the pod");
	else if (start)
		failed = a->running ? app_error(error, sizeof error, name, "is already running")
				    : start_app(a, error, sizeof error);
	else if (a->running) { /* stop or rm: answered once it has exited (answer_waiters) */
		if (a->n_waiters == MAX_WAITERS) {
			reply(conn, "control: too many requests waiting for this app");
			return;
		}
		a->waiters[a->n_waiters] = conn;
		a->waiter_rm[a->n_waiters++] = (char)rm;
		terminate(a);
		return;
	} else if (rm)
		remove_app(a);
	reply(conn, failed);
}

/* Connections whose request line has not arrived whole yet: read as it comes, from the poll
 * loop, so a slow (or stuck) client never holds up the pod's output or its reaping. */
#define MAX_PENDING 32
static struct pending {
	int fd; /* -1: free */
	size_t len;
} pending[MAX_PENDING];
/* The lines apart from the slots: a line's pages are touched only once its slot is used (the
 * loop over the slots would otherwise make 128 kB of every supervisor resident). */
static char pending_line[MAX_PENDING][MAX_LINE];

static void accept_requests(void)
{
	for (;;) {
		int conn = accept4(control_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (conn < 0)
			return; /* EAGAIN: no more */
		struct ucred cred;
		socklen_t len = sizeof cred;
		if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
		    cred.uid != geteuid()) {
			reply(conn, "control: permission denied");
			continue;
		}
		struct pending *slot = NULL;
		for (int i = 0; i < MAX_PENDING && slot == NULL; i++)
			if (pending[i].fd < 0)
				slot = &pending[i];
		if (slot == NULL) {
			reply(conn, "control: too many requests at once");
			continue;
		}
		slot->fd = conn;
		slot->len = 0;
	}
}

/* More of the request line of slot K: run it once whole; drop a connection that ends first or
 * whose line does not fit. */
static void read_request(int k)
{
	struct pending *p = &pending[k];
	char *line = pending_line[k];
	ssize_t got = read(p->fd, line + p->len, MAX_LINE - 1 - p->len);
	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (got > 0)
		p->len += (size_t)got;
	line[p->len] = '\0';
	int conn = p->fd;
	if (memchr(line, '\n', p->len) != NULL) {
		p->fd = -1;
		fcntl(conn, F_SETFL, fcntl(conn, F_GETFL) & ~O_NONBLOCK); /* the answer is written whole */
		run_request(conn, line);
	} else if (got <= 0 || p->len + 1 >= MAX_LINE) {
		p->fd = -1;
		close(conn); /* nothing sensible to answer */
	}
}

int main(int argc, char **argv)
{
	int i = 1;
	for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--interactive") == 0) {
			interactive = 1;
		} else if (strcmp(argv[i], "--control") == 0 && i + 2 < argc) {
			mutable_pod = 1;
			control_fd = atoi(argv[++i]);
			apps_dir = argv[++i];
			fcntl(control_fd, F_SETFD, FD_CLOEXEC);
			fcntl(control_fd, F_SETFL, fcntl(control_fd, F_GETFL) | O_NONBLOCK);
		} else {
			dprintf(2, "stage1: pod supervisor: unknown option %s\n", argv[i]);
			return 254;
		}
	}
	if (i == argc) {
		dprintf(2, "usage: pod-supervisor [--interactive] [--control FD APPS_DIR] -- APP...\n");
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

	struct pollfd pfds[2 * MAX_APPS + MAX_PENDING + 2];
	struct stream *owners[2 * MAX_APPS + MAX_PENDING + 2];
	for (int k = 0; k < MAX_PENDING; k++)
		pending[k].fd = -1;
	reap(); /* children that ended before the exec */
	while (running_apps > 0 || (mutable_pod && !stop_requested)) {
		int n = 0, first_stream, first_request;
		pfds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		pfds[n++] = (struct pollfd){.fd = mutable_pod ? control_fd : -1, .events = POLLIN};
		first_stream = n;
		for (int k = 0; k < n_streams; k++) {
			if (streams[k].fd >= 0) {
				owners[n] = &streams[k];
				pfds[n++] = (struct pollfd){.fd = streams[k].fd, .events = POLLIN};
			}
		}
		first_request = n;
		for (int k = 0; k < MAX_PENDING; k++)
			pfds[n++] = (struct pollfd){.fd = pending[k].fd, .events = POLLIN};
		long long next = kill_deadline;
		for (int k = 0; k < n_apps; k++)
			if (apps[k].running && apps[k].kill_at && (!next || apps[k].kill_at < next))
				next = apps[k].kill_at;
		int timeout = -1;
		if (next) {
			long long left = (next - now_ns(CLOCK_MONOTONIC)) / 1000000;
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
		for (int k = first_stream; k < first_request; k++) {
			if (pfds[k].revents)
				copy_output(owners[k], 0);
		}
		reap();
		if (!stop_requested) {
			for (int k = 0; k < MAX_PENDING; k++)
				if (pfds[first_request + k].revents && pending[k].fd >= 0)
					read_request(k);
			if (pfds[1].revents)
				accept_requests();
		}
		if (stop_requested && kill_deadline == 0)
			stop_apps();
		long long now = now_ns(CLOCK_MONOTONIC);
		if (kill_deadline && now >= kill_deadline) {
			kill(-1, SIGKILL); /* as PID 1: every other process of the pod */
			kill_deadline = now + STOP_TIMEOUT_NS;
		}
		for (int k = 0; k < n_apps; k++) {
			if (apps[k].running && apps[k].kill_at && now >= apps[k].kill_at) {
				if (kill(-apps[k].pid, SIGKILL) < 0)
					kill(apps[k].pid, SIGKILL);
				apps[k].kill_at = now + STOP_TIMEOUT_NS;
			}
		}
	}
	for (int k = 0; k < n_streams; k++) {
		if (streams[k].fd >= 0)
			copy_output(&streams[k], 1);
	}
	if (mutable_pod)
		return 0;
	return first_failure > 0 ? first_failure : 0;
}
