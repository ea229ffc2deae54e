/* plan.h: the plan encoding app-exec and pod-init read (src/rkt/stage1/ns/launch.py LaunchPlan
 * writes it): NUL-terminated strings, a keyword then its arguments; an empty string is "none"
 * where an argument is optional; numbers are decimal. Read from a file descriptor to the end,
 * at once (read_plan), or as the steps are performed (stream_plan: pod-init, whose first steps
 * may be written while the rest of its plan is still being made).
 * A program sets `label` (prefix of its error messages) and `plan_kind` before reading.
 * Static functions, included by each program (each is one static binary). */
#ifndef RKT_PLAN_H
#define RKT_PLAN_H

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define EXIT_SETUP_FAILED 254
#define STREAM_MAX (64 << 20) /* a streamed plan's limit (address space, reserved lazily) */

static const char *label = "stage1";
static const char *plan_kind = "plan";
static char *plan, *plan_end, *cursor;
static int plan_stream = -1; /* the descriptor a streamed plan is still read from */
/* Called when a streamed plan ends early, before the error is reported: a program whose writer
 * may die meanwhile (pod-init, spawned) exits quietly there if it did. */
static void (*plan_cut)(void);

/* strerror, lower case as the rest of rkt's messages ("no such file or directory") */
static const char *cause(int err)
{
	static char text[256];
	snprintf(text, sizeof text, "%s", strerror(err));
	text[0] = (char)(text[0] >= 'A' && text[0] <= 'Z' ? text[0] + 32 : text[0]);
	return text;
}

/* "LABEL: what: cause" on stderr (without the cause when ERR is 0), exit 254 */
static void fail(int err, const char *fmt, ...)
{
	char what[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (err)
		dprintf(2, "%s: %s: %s\n", label, what, cause(err));
	else
		dprintf(2, "%s: %s\n", label, what);
	exit(EXIT_SETUP_FAILED);
}

/* The pod's network barrier (src/rkt/stage1/ns/network.py PendingNetwork): FD is the read end
 * of a pipe whose one writer, the network attacher, writes "1" once the pod's networks are up,
 * or exits without writing if they failed. 0 once FD is readable, -1 at end of file alone. The
 * byte is never read, so every waiter of the pod sees it; FD is closed either way. */
static int await_barrier(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int rc;
	do
		rc = poll(&p, 1, -1);
	while (rc < 0 && errno == EINTR);
	int err = errno;
	close(fd);
	if (rc < 0)
		fail(err, "wait for the pod's network");
	return (p.revents & POLLIN) ? 0 : -1;
}

static int plan_fd(const char *arg)
{
	char *end;
	long fd = strtol(arg, &end, 10);
	if (*arg == '\0' || *end != '\0' || fd < 0)
		fail(EINVAL, "bad plan descriptor \"%s\"", arg);
	return (int)fd;
}

/* Read the plan from FD as its steps are asked for: a step is performed once its strings have
 * arrived, not after the writer closed FD. The strings stay where they are read (one
 * reservation, never moved), so pointers to them stay valid. */
__attribute__((unused)) static void stream_plan(int fd)
{
	plan = mmap(NULL, STREAM_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		    -1, 0);
	if (plan == MAP_FAILED)
		fail(errno, "reading the %s", plan_kind);
	plan_end = cursor = plan;
	plan_stream = fd;
}

/* More of a streamed plan; 0 at its end (FD closed). */
static int read_more(void)
{
	if (plan_stream < 0)
		return 0;
	for (;;) {
		if (plan_end == plan + STREAM_MAX)
			fail(E2BIG, "reading the %s", plan_kind);
		ssize_t n = read(plan_stream, plan_end, (size_t)(plan + STREAM_MAX - plan_end));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail(errno, "reading the %s", plan_kind);
		if (n == 0) {
			close(plan_stream);
			plan_stream = -1;
			if (plan_end > plan && plan_end[-1] != '\0') {
				if (plan_cut)
					plan_cut();
				fail(EINVAL, "the %s does not end with a NUL", plan_kind);
			}
			return 0;
		}
		plan_end += n;
		return 1;
	}
}

/* Read the whole plan from FD before its first step (app-exec). */
__attribute__((unused)) static void read_plan(int fd)
{
	stream_plan(fd);
	plan_cut = NULL; /* (pod-init's, in a fork running app-exec's code) */
	while (read_more())
		;
}

static int more(void)
{
	while (cursor == plan_end && read_more())
		;
	return cursor < plan_end;
}

static const char *next(void)
{
	if (!more()) {
		if (plan_stream < 0 && plan_cut)
			plan_cut();
		fail(EINVAL, "the %s ends in the middle of a step", plan_kind);
	}
	while (memchr(cursor, '\0', (size_t)(plan_end - cursor)) == NULL)
		read_more(); /* (at the end, it failed: no NUL) */
	const char *s = cursor;
	cursor += strlen(s) + 1;
	return s;
}

__attribute__((unused)) static const char *next_opt(void) /* "" means none */
{
	const char *s = next();
	return *s ? s : NULL;
}

static unsigned long long next_num(void)
{
	const char *s = next();
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end != '\0' || errno)
		fail(EINVAL, "the %s has \"%s\" where a number belongs", plan_kind, s);
	return v;
}

#endif
