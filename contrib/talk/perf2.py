#!/usr/bin/env python3
# perf2.py - the talk's perf2: requests/sec of fast requests.
#
# One client in a loop sends b'1' (no newline) and reads the reply; a
# monitor thread prints how many requests it made each second. Run it
# against fibd --framing read (see README.md). Ctrl-C stops it.
from socket import *
from threading import Event, Thread
import time

from talkcheck import check, more, options, stopped

args = options('perf2: one client, requests/sec of fib(n)', n=1)
sock = socket(AF_INET, SOCK_STREAM)
sock.connect((args.host, args.port))
n = 0
done_monitoring = Event()


def monitor():
    global n
    while not done_monitoring.wait(1):
        print(n, 'reqs/sec', flush=True)
        n = 0


mon = Thread(target=monitor, daemon=True)
mon.start()
done, began = 0, time.time()
with stopped():
    while more(args, done, began):
        sock.send(args.request)
        resp = sock.recv(100)
        check(sock, resp, args)
        n += 1
        done += 1
done_monitoring.set()
mon.join()
print('%d requests in %.2f s' % (done, time.time() - began), flush=True)
