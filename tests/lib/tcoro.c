#include "tcoro.h"

#include <stdlib.h>

#include "../t.h"
#include "coro/san.h"

#ifdef CORO_ASAN
#include <sanitizer/lsan_interface.h>
#endif

_Atomic int tcoro_failed;

void tcoro_check_clean(void)
{
	T_CHECK(tcoro_failed == 0, "%d checks failed in coroutines",
		tcoro_failed);
#ifdef CORO_ASAN
	T_CHECK(__lsan_do_recoverable_leak_check() == 0);
#endif
}

struct coro_rt *tcoro_rt_new(unsigned workers)
{
	struct coro_rt_opts o = {.workers = workers};
	struct coro_rt *rt = coro_rt_new(&o);

	T_CHECK(rt != NULL);
	if (!rt)
		exit(1);
	return rt;
}
