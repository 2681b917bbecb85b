#ifdef FIBD_HAVE_PYTHON
/* Python.h first: it sets feature macros the system headers must see. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#endif

#include "pyengine.h"

#include <errno.h>

#include "proto.h"

#ifdef FIBD_HAVE_PYTHON

#include <gmp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/*
 * The Python side. naive() and fast() are what C calls, indexed by enum
 * fib_algo; fib() is the talk's, untouched.
 */
static const char py_source[] =
    "def fib(n):\n"
    "    return 1 if n <= 2 else fib(n - 1) + fib(n - 2)\n"
    "\n"
    "def naive(n):\n"
    "    return fib(n) if n else 0\n"
    "\n"
    "def fast(n):\n"
    "    # fast doubling: F(2k) = F(k)(2F(k+1) - F(k)),\n"
    "    # F(2k+1) = F(k)^2 + F(k+1)^2; (a, b) is (F(k), F(k+1))\n"
    "    a, b = 0, 1\n"
    "    for bit in bin(n)[2:]:\n"
    "        a, b = a * (2 * b - a), a * a + b * b\n"
    "        if bit == '1':\n"
    "            a, b = b, a + b\n"
    "    return a\n";

#define PY_NFUNCS 2 /* naive, fast: indexed by enum fib_algo */

static pthread_once_t py_once = PTHREAD_ONCE_INIT;
static int py_init_err;
static PyInterpreterState *py_main;	   /* the main interpreter */
static PyObject *py_main_funcs[PY_NFUNCS]; /* its naive and fast */
static pthread_key_t py_key; /* deletes a thread's state at thread exit */

/* What one thread holds: its states, and its subinterpreter's functions. */
struct py_thread {
	PyThreadState *ts;  /* in the main interpreter; NULL: none yet */
	PyThreadState *sub; /* its subinterpreter's; NULL: none */
	PyObject *sub_funcs[PY_NFUNCS];
};

static _Thread_local struct py_thread py_self;

/*
 * Defines py_source in a fresh namespace of the current interpreter and
 * takes new references to its naive and fast. GIL held. 0 or -EIO.
 */
static int py_load(PyObject *funcs[PY_NFUNCS])
{
	static const char *const names[PY_NFUNCS] = {"naive", "fast"};
	PyObject *ns = PyDict_New(), *res = NULL;
	int err = -EIO;

	if (!ns ||
	    PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) < 0)
		goto out_clear;
	res = PyRun_String(py_source, Py_file_input, ns, ns);
	if (!res)
		goto out_clear;
	for (int i = 0; i < PY_NFUNCS; i++) {
		funcs[i] = PyDict_GetItemString(ns, names[i]); /* borrowed */
		Py_XINCREF(funcs[i]);
	}
	err = funcs[0] && funcs[1] ? 0 : -EIO;
	if (err)
		for (int i = 0; i < PY_NFUNCS; i++)
			Py_CLEAR(funcs[i]);
out_clear:
	if (err)
		PyErr_Clear();
	Py_XDECREF(res);
	Py_XDECREF(ns);
	return err;
}

/*
 * A thread's main-interpreter state, deleted when the thread exits. The
 * GIL is needed to clear it, and clearing releases it again.
 */
static void py_thread_exit(void *ts)
{
	PyEval_RestoreThread(ts);
	PyThreadState_Clear(ts);
	PyThreadState_DeleteCurrent();
}

static void py_start(void)
{
	PyConfig config;
	PyStatus st;

	/* Isolated: no environment variables, no user site, no argv. */
	PyConfig_InitIsolatedConfig(&config);
	config.site_import = 0;		    /* fib needs builtins only */
	config.install_signal_handlers = 0; /* SIGINT/SIGTERM stay fibd's */
	st = Py_InitializeFromConfig(&config);
	PyConfig_Clear(&config);
	if (PyStatus_Exception(st)) {
		log_msg("python engine: CPython would not start: %s%s%s",
			st.func ? st.func : "", st.func ? ": " : "",
			st.err_msg ? st.err_msg : "unknown error");
		py_init_err = -EIO;
		return;
	}
	py_main = PyInterpreterState_Get();
	py_init_err = py_load(py_main_funcs);
	if (!py_init_err)
		py_init_err = -pthread_key_create(&py_key, py_thread_exit);
	if (py_init_err)
		log_err(py_init_err, "python engine: cannot define fib");
	/* This thread keeps the interpreter's first state: no destructor. */
	py_self.ts = PyEval_SaveThread();
}

bool pyengine_available(void)
{
	return true;
}

int pyengine_init(void)
{
	pthread_once(&py_once, py_start);
	return py_init_err;
}

/* The calling thread's main-interpreter state, made on first use. */
static PyThreadState *py_thread_state(void)
{
	PyThreadState *ts = py_self.ts;

	if (ts)
		return ts;
	ts = PyThreadState_New(py_main); /* needs no GIL */
	if (!ts)
		return NULL;
	if (pthread_setspecific(py_key, ts)) {
		py_thread_exit(ts);
		return NULL;
	}
	py_self.ts = ts;
	return ts;
}

/* Writes u in decimal and '\n' into r's inline buffer. */
static void py_reply_u64(unsigned long long u, struct reply *r)
{
	size_t len = fib_u64_to_dec(u, r->inline_buf);

	r->inline_buf[len++] = '\n';
	r->text = r->inline_buf;
	r->len = len;
}

/*
 * Python int -> z, through hex: linear time, and no int-to-str digit
 * limit (CPython 3.11 refuses str() of ints past 4300 digits). GIL held.
 */
static int py_to_mpz(PyObject *v, mpz_t z)
{
	PyObject *hex = PyNumber_ToBase(v, 16); /* "0x..." */
	const char *s = hex ? PyUnicode_AsUTF8(hex) : NULL;
	int err =
	    s && strlen(s) > 2 && mpz_set_str(z, s + 2, 16) == 0 ? 0 : -EIO;

	Py_XDECREF(hex);
	return err;
}

/* z in decimal and '\n' into a heap reply. No GIL needed. */
static int py_reply_mpz(const mpz_t z, struct reply *r)
{
	size_t cap = mpz_sizeinbase(z, 10) + 2; /* digits, '\n' or NUL */
	char *text = malloc(cap);
	size_t len;

	if (!text)
		return -ENOMEM;
	mpz_get_str(text, 10, z);
	len = strlen(text);
	text[len++] = '\n';
	r->text = text;
	r->len = len;
	return 0;
}

/*
 * Calls fn(n) with the GIL held. A result that fits 64 bits goes straight
 * to r; a bigger one lands in big (big_used set) for formatting after the
 * GIL is dropped. 0 or -EIO.
 */
static int py_call(PyObject *fn, uint64_t n, struct reply *r, mpz_t big,
		   bool *big_used)
{
	PyObject *arg = PyLong_FromUnsignedLongLong(n);
	PyObject *v = arg ? PyObject_CallOneArg(fn, arg) : NULL;
	unsigned long long u;
	int err = 0;

	Py_XDECREF(arg);
	if (!v) {
		PyErr_Clear(); /* MemoryError, say: one request fails */
		return -EIO;
	}
	u = PyLong_AsUnsignedLongLong(v);
	if (u == (unsigned long long)-1 && PyErr_Occurred()) {
		PyErr_Clear(); /* OverflowError: a big int */
		mpz_init(big);
		*big_used = true;
		err = py_to_mpz(v, big);
	} else {
		py_reply_u64(u, r);
	}
	Py_DECREF(v);
	return err;
}

int pyengine_fib(enum fib_algo algo, uint64_t n, struct reply *r)
{
	struct py_thread *self = &py_self;
	PyThreadState *ts;
	PyObject *fn;
	bool big_used = false;
	mpz_t big;
	int err = pyengine_init();

	if (err)
		return err;
	if (algo != FIB_FAST && n > FIB_U64_MAX_N)
		return -ERANGE;
	ts = self->sub ? self->sub : py_thread_state();
	if (!ts)
		return -ENOMEM;
	fn = self->sub ? self->sub_funcs[algo] : py_main_funcs[algo];
	PyEval_RestoreThread(ts); /* take the GIL: here threads queue */
	err = py_call(fn, n, r, big, &big_used);
	PyEval_SaveThread();
	if (big_used) {
		if (!err)
			err = py_reply_mpz(big, r);
		mpz_clear(big);
	}
	return err;
}

int pyengine_sub_begin(void)
{
	struct py_thread *self = &py_self;
	PyThreadState *ts, *sub;
	int err = pyengine_init();

	if (err)
		return err;
	if (self->sub)
		return -EBUSY;
	ts = py_thread_state();
	if (!ts)
		return -ENOMEM;
	PyEval_RestoreThread(ts);
	sub = Py_NewInterpreter(); /* and makes it current */
	if (!sub) {
		PyThreadState_Swap(ts);
		PyEval_SaveThread();
		return -EIO;
	}
	err = py_load(self->sub_funcs);
	if (err) {
		Py_EndInterpreter(sub); /* leaves no current state */
		PyThreadState_Swap(ts);
		PyEval_SaveThread();
		return err;
	}
	self->sub = PyEval_SaveThread();
	return 0;
}

void pyengine_sub_end(void)
{
	struct py_thread *self = &py_self;

	if (!self->sub)
		return;
	PyEval_RestoreThread(self->sub);
	for (int i = 0; i < PY_NFUNCS; i++)
		Py_CLEAR(self->sub_funcs[i]);
	Py_EndInterpreter(self->sub); /* leaves no current state */
	self->sub = NULL;
	PyThreadState_Swap(self->ts);
	PyEval_SaveThread();
}

#else /* !FIBD_HAVE_PYTHON: the build found no libpython */

bool pyengine_available(void)
{
	return false;
}

int pyengine_init(void)
{
	return -ENOSYS;
}

int pyengine_fib(enum fib_algo algo, uint64_t n, struct reply *r)
{
	(void)algo;
	(void)n;
	(void)r;
	return -ENOSYS;
}

int pyengine_sub_begin(void)
{
	return -ENOSYS;
}

void pyengine_sub_end(void)
{
}

#endif
