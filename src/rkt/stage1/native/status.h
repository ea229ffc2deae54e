/* status.h: what pod-init and pod-supervisor both write about an app they start: its pid as the
 * host sees it, and its status JSON in the layout of rkt.stage1.common.status.AppStatus.
 * Static functions, included by each program (each is one static binary). */
#ifndef RKT_STATUS_H
#define RKT_STATUS_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#endif
