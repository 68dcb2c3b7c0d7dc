"""CPython baseline for the sockserv benchmark: socketserver.ThreadingTCPServer with a
StreamRequestHandler readline loop -- one thread per connection, the textbook Python server.

    python3 bench/baselines/python_threading.py ping|pbkdf2|echo|mixed

mixed answers PING with PONG and any other line with its hash (cheap and heavy on one server).

Prints `listening on tcp://127.0.0.1:PORT` once bound (port 0: any free port) and exits when
stdin closes (the harness is gone) or on SIGTERM. The work matches bench/work.ts. Two settings
differ from the defaults, so the baseline is not handicapped by configuration: Nagle is off (as
in every Node server measured) and the listen backlog is 511 (Node's default) instead of 5.
"""

import hashlib
import os
import socketserver
import sys
import threading

SALT = b"sockserv"
ITERATIONS = 2000
KEY_BYTES = 32


def reply_ping(_line):
    return b"PONG\n"


def reply_pbkdf2(line):
    return hashlib.pbkdf2_hmac("sha256", line, SALT, ITERATIONS, KEY_BYTES).hex().encode() + b"\n"


def reply_echo(line):
    return line + b"\n"


def reply_mixed(line):
    return reply_ping(line) if line == b"PING" else reply_pbkdf2(line)


class LineHandler(socketserver.StreamRequestHandler):
    disable_nagle_algorithm = True
    reply = staticmethod(reply_ping)

    def handle(self):
        while True:
            line = self.rfile.readline()
            if not line:
                break
            self.wfile.write(self.reply(line.rstrip(b"\n")))


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 511


def exit_when_stdin_closes():
    sys.stdin.buffer.read()
    os._exit(0)


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else "ping"
    LineHandler.reply = staticmethod({"ping": reply_ping, "pbkdf2": reply_pbkdf2, "echo": reply_echo, "mixed": reply_mixed}[work])
    with Server(("127.0.0.1", 0), LineHandler) as server:
        host, port = server.server_address
        print(f"listening on tcp://{host}:{port}", flush=True)
        threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
        server.serve_forever()


if __name__ == "__main__":
    main()
