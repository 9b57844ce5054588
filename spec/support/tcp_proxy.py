#!/usr/bin/python3
"""A loopback TCP proxy the specs own, for network faults between a client and a server.

usage: tcp_proxy.py TARGET_PORT

Listens on a free port of 127.0.0.1 and forwards every connection to 127.0.0.1:TARGET_PORT.
Prints "port N" on stdout once it listens, then reads one command a line on stdin and prints
"ok COMMAND" once it is in effect:

  reset      closes every proxied connection with an RST on both sides (SO_LINGER 0)
  blackhole  a half-open partition: nothing is forwarded any more, in either direction, but
             every socket stays open; new connections are accepted and left waiting
  heal       forwards again (what was sent meanwhile included), and connects the waiting ones

It exits when stdin ends, so it does not outlive the spec that started it.
"""

import os
import select
import socket
import struct
import sys

CHUNK = 65536
# A side is not read while this much is waiting to be written to the other one.
BACKLOG_LIMIT = 1 << 20
RST = struct.pack("ii", 1, 0)


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Link:
    """One proxied connection: the client's socket and, once connected, the server's."""

    def __init__(self, client):
        self.client = client
        self.server = None
        self.pending = {}  # socket -> bytes waiting to be written to it

    def connect(self, port):
        try:
            self.server = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            return False
        for sock in (self.client, self.server):
            sock.setblocking(False)
            self.pending[sock] = bytearray()
        return True

    def sockets(self):
        return [s for s in (self.client, self.server) if s is not None]

    def peer(self, sock):
        return self.server if sock is self.client else self.client

    def close(self, reset):
        for sock in self.sockets():
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
            sock.close()


class Proxy:
    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.links = []
        self.blackholed = False
        self.commands = b""

    def accept(self):
        client, _ = self.listener.accept()
        link = Link(client)
        if self.blackholed:
            self.links.append(link)  # connected on heal
        elif link.connect(self.target_port):
            self.links.append(link)
        else:
            link.close(reset=True)  # the server is down: refused, as it would be directly

    def command(self, word):
        if word == "reset":
            for link in self.links:
                link.close(reset=True)
            self.links = []
        elif word == "blackhole":
            self.blackholed = True
        elif word == "heal":
            self.blackholed = False
            waiting = [link for link in self.links if link.server is None]
            for link in waiting:
                if not link.connect(self.target_port):
                    link.close(reset=True)
                    self.links.remove(link)
        else:
            say("error unknown command " + repr(word))
            return
        say("ok " + word)

    def read_commands(self):
        data = os.read(0, 4096)
        if not data:
            return False
        self.commands += data
        while b"\n" in self.commands:
            line, self.commands = self.commands.split(b"\n", 1)
            if line.strip():
                self.command(line.strip().decode())
        return True

    def forward(self, link, sock):
        """Reads what `sock` has for its peer; False when the link is over."""
        try:
            data = sock.recv(CHUNK)
        except ConnectionResetError:
            link.close(reset=True)
            return False
        except OSError:
            data = b""
        if not data:
            try:  # what the peer had not taken yet, as a closing socket would still send it
                link.peer(sock).send(link.pending[link.peer(sock)])
            except OSError:
                pass
            link.close(reset=False)
            return False
        link.pending[link.peer(sock)] += data
        return True

    def flush(self, link, sock):
        try:
            sent = sock.send(link.pending[sock])
        except OSError:
            link.close(reset=True)
            return False
        del link.pending[sock][:sent]
        return True

    def run(self):
        say("port %d" % self.listener.getsockname()[1])
        while True:
            readers, writers = [0, self.listener], []
            if not self.blackholed:
                for link in self.links:
                    for sock in link.sockets():
                        if len(link.pending[link.peer(sock)]) < BACKLOG_LIMIT:
                            readers.append(sock)
                        if link.pending[sock]:
                            writers.append(sock)
            readable, writable, _ = select.select(readers, writers, [])
            if 0 in readable and not self.read_commands():
                return
            if self.listener in readable:
                self.accept()
            owner = {sock: link for link in self.links for sock in link.sockets()}
            over = set()
            for sock in writable:
                link = owner.get(sock)  # None: closed by a reset just now
                if link is not None and link not in over and not self.flush(link, sock):
                    over.add(link)
            for sock in readable:
                link = owner.get(sock)
                if link is not None and link not in over and not self.forward(link, sock):
                    over.add(link)
            self.links = [link for link in self.links if link not in over]


def main():
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: tcp_proxy.py TARGET_PORT")
    Proxy(int(sys.argv[1])).run()


if __name__ == "__main__":
    main()
