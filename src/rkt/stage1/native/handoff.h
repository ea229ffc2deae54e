/* handoff.h: the signals a pod is handed over with (rkt.stage1.ns.native.HANDOFF_SIGNALS).
 * Whoever hands a pod over (pod-init, first thing) blocks them before it forks the init; the program it exec's next (run-waiter, pod-supervisor) blocks them too and reads them
 * from a signalfd, so a stop request sent in between stays pending instead of being lost. */
#ifndef RKT_HANDOFF_H
#define RKT_HANDOFF_H

#include <signal.h>

/* Fill MASK with SIGTERM, SIGHUP, SIGINT and SIGCHLD and block them; -1 (errno) on failure.
 * SIGCHLD's disposition goes back to the default first: one the caller ignored (execve keeps
 * an ignored disposition) would have the kernel reap our children itself, and no SIGCHLD
 * would ever reach the signalfd these programs wait on. */
static int block_handoff_signals(sigset_t *mask)
{
	if (signal(SIGCHLD, SIG_DFL) == SIG_ERR)
		return -1;
	sigemptyset(mask);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGHUP);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGCHLD);
	return sigprocmask(SIG_BLOCK, mask, NULL);
}

#endif
