/*
 * pyengine - fib computed in an embedded CPython, under its real GIL.
 *
 * The talk's servers are Python, and its CPU table is the GIL's table: two
 * threads computing fib get no more done than one. fibd --engine python
 * runs the talk's own fib in CPython (libpython3, 3.11 on Debian 12), so
 * every model meets the real lock:
 *
 *	def fib(n):
 *	    return 1 if n <= 2 else fib(n - 1) + fib(n - 2)
 *
 * (the talk's body; fib(0) = 0 is answered by a wrapper, so the recursion
 * makes exactly the talk's calls). --algo fast runs fast doubling on
 * Python's big ints instead.
 *
 * One interpreter per process, started on first use (pthread_once) from
 * an isolated PyConfig: PYTHONHOME, PYTHONPATH and the rest of the
 * environment cannot break it, Python installs no signal handler (fibd's
 * own stop handling stays in charge), and site is not imported (fib needs
 * nothing but builtins). Starting on first use, not in main(), keeps the
 * interpreter out of a process that will fork (many's supervisor): each
 * forked server starts its own.
 *
 * Every call takes the GIL for the Python part and gives it back: a thread
 * computing fib(30) holds it, and another thread that wants it waits for
 * the holder to drop it, which CPython forces every switch interval
 * (sys.getswitchinterval(), 5 ms by default). fibd leaves the interval at
 * its default: the 5 ms wait a fib(1) pays behind a fib(30) is the convoy
 * the talk's tables show, and part of the lesson.
 *
 * Functions return 0 or a negative errno. Without libpython at build time
 * (see the Makefile) everything here returns -ENOSYS.
 */
#ifndef FIBD_CORE_PYENGINE_H
#define FIBD_CORE_PYENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "fib.h"

struct reply;

/* True when this build has the python engine (libpython was found). */
bool pyengine_available(void);

/*
 * Starts the process's interpreter, once; later calls return the first
 * call's result. Any thread. -ENOSYS without the engine, -EIO when CPython
 * would not start (logged once).
 */
int pyengine_init(void);

/*
 * Computes fib(n) in Python into r ('\n' included; a large reply on the
 * heap, see reply_release()). Any thread, any number at once: each takes
 * the GIL for its call. Starts the interpreter if need be. In a thread
 * inside pyengine_sub_begin() .. pyengine_sub_end(), runs in that thread's
 * subinterpreter. Returns 0; -ENOSYS, -EIO (Python raised, or would not
 * start), -ENOMEM, or -ERANGE (naive with n > FIB_U64_MAX_N), with r
 * untouched.
 */
int pyengine_fib(enum fib_algo algo, uint64_t n, struct reply *r);

/*
 * Gives the calling thread a subinterpreter of its own (Py_NewInterpreter),
 * with its own modules, globals and fib: the calling thread's later
 * pyengine_fib() calls run there. In Python 3.11 every subinterpreter still
 * shares the process's one GIL (3.12 brings a GIL per interpreter), so this
 * isolates state, not compute. Returns 0, -EBUSY when the thread has one
 * already, -ENOSYS or -EIO.
 */
int pyengine_sub_begin(void);

/* Ends the calling thread's subinterpreter (Py_EndInterpreter), if any. */
void pyengine_sub_end(void);

#endif
