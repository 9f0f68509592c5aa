#!/usr/bin/env python3
"""Readers for Benchmarks/route.sh: many reader-socket clients in one process, or a
tailer of the host log, timing each event from its kernel timestamp to its arrival.

  route-readers.py --socket RUN/reader.sock --contid 5001 --contid 5002 ... --out FILE
  route-readers.py --tail LOG/audit.log --key rbench --out FILE

Runs until SIGTERM or SIGINT, then writes one line to --out:
  events=N lost=N p50_ms=X p99_ms=X max_ms=X readers=N
(events: SYSCALL records with key="KEY" received; lost: the sum of lost= in
CONTAINER_LOST records received; latency: arrival wall time minus the record's
msg=audit(SEC.MS:...) time, in ms, at the kernel timestamp's millisecond resolution).
"""
import argparse, os, re, select, signal, socket, sys, time

STAMP = re.compile(rb"msg=audit\((\d+)\.(\d+):(\d+)\)")
LOST = re.compile(rb"\blost=(\d+)")

stop = False
def on_signal(*_):
    global stop
    stop = True

class Counter:
    def __init__(self, key):
        self.key = b'key="' + key.encode() + b'"'
        self.events = 0
        self.lost = 0
        self.latencies = []

    def line(self, line, now):
        if b"type=CONTAINER_LOST" in line:
            m = LOST.search(line)
            if m: self.lost += int(m.group(1))
            return
        if not line.startswith(b"type=SYSCALL") and b" type=SYSCALL " not in line[:40]:
            return
        if self.key not in line:
            return
        m = STAMP.search(line)
        if not m: return
        t = int(m.group(1)) + int(m.group(2)) / 1000.0
        self.events += 1
        self.latencies.append((now - t) * 1000.0)

    def summary(self, readers):
        lat = sorted(self.latencies)
        def pct(p):
            return lat[min(len(lat) - 1, int(len(lat) * p))] if lat else 0.0
        return "events=%d lost=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f readers=%d" % (
            self.events, self.lost, pct(0.5), pct(0.99), lat[-1] if lat else 0.0, readers)

def readers(args, counter):
    socks = []
    for c in args.contid:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(args.socket)
        req = "SUBSCRIBE format=raw contid=%s%s\n" % (c, " nested=1" if args.nested else "")
        s.sendall(req.encode())
        socks.append(s)
    buffers = {s.fileno(): b"" for s in socks}
    by_fd = {s.fileno(): s for s in socks}
    # The first line of each is the server's answer.
    pending = set(buffers)
    ready_file = args.ready
    while not stop and by_fd:
        r, _, _ = select.select(list(by_fd), [], [], 0.2)
        now = time.time()
        for fd in r:
            data = by_fd[fd].recv(1 << 16)
            if not data:
                del by_fd[fd]
                continue
            buf = buffers[fd] + data
            *lines, buffers[fd] = buf.split(b"\n")
            for l in lines:
                if fd in pending:
                    pending.discard(fd)
                    if not l.startswith(b"OK"):
                        sys.stderr.write("reader %d: %s\n" % (fd, l.decode(errors="replace")))
                        sys.exit(1)
                    if not pending and ready_file:
                        open(ready_file, "w").close()
                    continue
                counter.line(l, now)
    return len(socks)

def tail(args, counter):
    while not os.path.exists(args.tail) and not stop:
        time.sleep(0.01)
    f = open(args.tail, "rb")
    if args.ready: open(args.ready, "w").close()
    rest = b""
    while not stop:
        data = f.read(1 << 20)
        if not data:
            time.sleep(0.001)
            continue
        now = time.time()
        *lines, rest = (rest + data).split(b"\n")
        for l in lines: counter.line(l, now)
    return 1

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--socket")
    p.add_argument("--contid", action="append", default=[])
    p.add_argument("--nested", action="store_true")
    p.add_argument("--tail")
    p.add_argument("--key", default="rbench")
    p.add_argument("--ready", help="file created once every reader is subscribed")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    counter = Counter(args.key)
    n = tail(args, counter) if args.tail else readers(args, counter)
    with open(args.out, "w") as out:
        out.write(counter.summary(n) + "\n")

main()
