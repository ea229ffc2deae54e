/* run-waiter: the resident half of the ns flavor's run entrypoint (and of the --private-users
 * helper). The Python run entrypoint sets the pod up, has pod-init fork the pod init as its child
 * (or pod-init, exec'd, forks it) and exec's this program,
 * which stays the caller's child for as long as the pod runs, holding the pod lock
 * (RKT_LOCK_FD stays open: it is not close-on-exec):
 *
 *   - it waits for WAIT_PID (its child) and exits with its status (death by signal N: 128+N);
 *     any other child it has (a CNI pod's network attacher, forked by the run entrypoint) is
 *     reaped as it exits;
 *   - SIGTERM and SIGHUP (and SIGINT unless --interactive: the app owns the terminal's ^C) are
 *     forwarded to SIGNAL_PID (default WAIT_PID) as SIGTERM: the pod init stops the pod;
 *   - with --ignore-signals, it only relays the status (the --private-users helper: stop
 *     requests reach the init through the run process).
 *
 * pod-init blocks SIGTERM, SIGHUP, SIGINT and SIGCHLD first thing, before the exec, so a signal
 * sent meanwhile stays pending and is read here from a signalfd.
 *
 * usage: run-waiter [--interactive] [--ignore-signals] WAIT_PID [SIGNAL_PID]
 *        run-waiter [--interactive] --spawned POD_INIT_PID PID_FD
 *
 * --spawned: the run process spawned pod-init before its plan was complete (pod-init's
 * "fork-sibling" step), and the init is this process's child too; WAIT_PID is read from PID_FD
 * (to its end). Nothing there: pod-init failed before it forked the init (it said why on
 * stderr), and its status is ours.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handoff.h"

static int status_of(int st)
{
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

/* The init's pid from PID_FD (written by the spawned pod-init), or pod-init's own status. */
static pid_t spawned_init(pid_t pod_init, int pid_fd, int *status)
{
	char text[24];
	size_t len = 0;
	while (len < sizeof text - 1) {
		ssize_t n = read(pid_fd, text + len, sizeof text - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(pid_fd);
	text[len] = '\0';
	if (len > 0)
		return (pid_t)atoi(text);
	int st;
	while (waitpid(pod_init, &st, 0) < 0) {
		if (errno != EINTR) {
			dprintf(2, "stage1: run waiter: pod-init %d: %s\n", (int)pod_init, strerror(errno));
			*status = 254;
			return -1;
		}
	}
	*status = status_of(st) ? status_of(st) : 254; /* (exited 0 without a pid: never) */
	return -1;
}

int main(int argc, char **argv)
{
	int interactive = 0, ignore = 0, spawned = 0, i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--interactive") == 0)
			interactive = 1;
		else if (strcmp(argv[i], "--ignore-signals") == 0)
			ignore = 1;
		else if (strcmp(argv[i], "--spawned") == 0)
			spawned = 1;
		else
			break;
	}
	if (argc - i < 1 || argc - i > 2 || (spawned && argc - i != 2)) {
		dprintf(2, "usage: run-waiter [--interactive] [--ignore-signals] WAIT_PID [SIGNAL_PID]\n"
			   "       run-waiter [--interactive] --spawned POD_INIT_PID PID_FD\n");
		return 254;
	}
	sigset_t mask;
	int sfd = -1;
	if (block_handoff_signals(&mask) < 0 || (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
		dprintf(2, "stage1: run waiter: %s\n", strerror(errno));
		return 254;
	}
	pid_t wait_pid, signal_pid;
	if (spawned) {
		int status = 254;
		wait_pid = signal_pid = spawned_init((pid_t)atoi(argv[i]), atoi(argv[i + 1]), &status);
		if (wait_pid < 0)
			return status;
	} else {
		wait_pid = (pid_t)atoi(argv[i]);
		signal_pid = argc - i == 2 ? (pid_t)atoi(argv[i + 1]) : wait_pid;
	}
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid == wait_pid)
			return status_of(st);
		if (pid > 0)
			continue; /* another child of ours: reaped */
		if (pid < 0 && errno != EINTR) {
			dprintf(2, "stage1: run waiter: pid %d: %s\n", (int)wait_pid, strerror(errno));
			return 254;
		}
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof si) != sizeof si)
			continue;
		if (ignore || si.ssi_signo == SIGCHLD || (si.ssi_signo == SIGINT && interactive))
			continue;
		kill(signal_pid, SIGTERM);
	}
}
