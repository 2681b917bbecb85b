#!/usr/bin/env python3
# perf1.py - the talk's perf1: the time of a long-running request.
#
# One client in a loop: send b'30' (no newline), recv(100), print the time
# the request took. Run it against fibd --framing read (see README.md).
# Ctrl-C stops it.
from socket import *
import time

from talkcheck import check, more, options, stopped

args = options('perf1: one client, the time of each fib(n) request', n=30)
sock = socket(AF_INET, SOCK_STREAM)
sock.connect((args.host, args.port))
done, began = 0, time.time()
with stopped():
    while more(args, done, began):
        start = time.time()
        sock.send(args.request)
        resp = sock.recv(100)
        end = time.time()
        check(sock, resp, args)
        print(end - start, flush=True)
        done += 1
