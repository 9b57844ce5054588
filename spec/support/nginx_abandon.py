#!/usr/bin/python3
"""Client aborts for the nginx specs: requests that the client gives up on.

usage: nginx_abandon.py PORT PATH COUNT MILLISECONDS [WORKER_PID]

Opens COUNT connections to 127.0.0.1:PORT, sends "GET PATH" on each (HTTP/1.1, one request a
connection) and closes each connection MILLISECONDS after its request was sent, whether or not
an answer came: nginx sees the client go away (with lua_check_client_abort on, the request is
aborted). With WORKER_PID, every connection is first made to reach that worker: it asks
/__ready on a keep-alive connection and keeps the connection only if that worker answered
(a connection stays with the worker that accepted it), else tries a new one, for at most
CONNECT_SECONDS in all.

Prints "sent N answered K": K of the N connections had a response (or the server's close)
waiting when the client closed them, so at most N - K requests were abandoned unanswered.
"""

import http.client
import select
import sys
import time

CONNECT_SECONDS = 10


def connect(port, worker, deadline):
    """A connection to the server, accepted by `worker` when it is given."""
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CONNECT_SECONDS)
        if worker is None:
            conn.connect()
            return conn
        conn.request("GET", "/__ready")
        answer = conn.getresponse().read().decode()
        if answer.split()[-1] == worker:
            return conn
        conn.close()
        if time.monotonic() > deadline:
            sys.exit("nginx_abandon: no connection reached worker %s in %d s" % (worker, CONNECT_SECONDS))


def main():
    port, path, count, milliseconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    worker = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] else None
    request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode()
    deadline = time.monotonic() + CONNECT_SECONDS
    sent = []
    for _ in range(count):
        conn = connect(port, worker, deadline)
        conn.sock.sendall(request)
        sent.append((time.monotonic(), conn))
    answered = 0
    for sent_at, conn in sent:
        delay = sent_at + milliseconds / 1000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        readable, _, _ = select.select([conn.sock], [], [], 0)
        answered += len(readable)
        conn.close()
    print("sent %d answered %d" % (len(sent), answered))


if __name__ == "__main__":
    main()
