"""What perf1.py and perf2.py add to the talk's clients so that a test can
run them: options, a bound, a clean stop on Ctrl-C, and a check of every
reply against fib(n).

The talk's clients never look at a reply. These do, and exit 1 on the
first wrong or missing one, saying why on stderr.
"""
import argparse
import contextlib
import os
import socket
import sys
import time

PROG = os.path.basename(sys.argv[0])


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def fail(why):
    print('%s: %s' % (PROG, why), file=sys.stderr)
    sys.exit(1)


def no_reply(kind, value, tb):
    """A recv that timed out or a broken connection is a missing reply."""
    if issubclass(kind, OSError):
        hint = ''
        if issubclass(kind, socket.timeout):
            hint = '; is fibd running with --framing read?'
        print('%s: no reply (%s)%s' % (PROG, value, hint), file=sys.stderr)
    else:
        sys.__excepthook__(kind, value, tb)


def options(doc, n):
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument('--host', default='localhost')
    ap.add_argument('--port', type=int, default=25000)
    ap.add_argument('--n', type=int, default=n, help='the n to ask for')
    ap.add_argument('--count', type=int, default=0,
                    help='stop after this many requests (0: never)')
    ap.add_argument('--seconds', '--duration', type=float, default=0,
                    help='stop after this many seconds (0: never; '
                         'Ctrl-C stops it too)')
    ap.add_argument('--timeout', type=float, default=10,
                    help='seconds a reply may take before it counts as '
                         'missing (default 10)')
    args = ap.parse_args()
    args.request = b'%d' % args.n  # no newline, as in the talk
    args.want = b'%d\n' % fib(args.n)
    socket.setdefaulttimeout(args.timeout)
    sys.excepthook = no_reply  # exit status 1, one line instead of a trace
    return args


@contextlib.contextmanager
def stopped():
    """Ctrl-C ends the loop inside, as a bound would: no traceback."""
    try:
        yield
    except KeyboardInterrupt:
        print(file=sys.stderr)  # past the ^C the terminal echoed


def more(args, done, start):
    """True while the bound (--count, --seconds) allows another request."""
    if args.count and done >= args.count:
        return False
    return not args.seconds or time.time() - start < args.seconds


def check(sock, resp, args):
    """resp is what recv(100) gave: read the rest of a reply that came in
    pieces (a large one), then compare it with fib(n)."""
    while resp and not resp.endswith(b'\n'):
        part = sock.recv(100)
        if not part:
            break
        resp += part
    if not resp:
        fail('the server closed with no reply to %r' % args.request)
    if resp != args.want:
        fail('asked %r, got %r, want %r'
             % (args.request, resp[:80], args.want[:80]))
