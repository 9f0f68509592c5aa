#!/usr/bin/env python3
"""Writes a large audit log by repeating a capture with serials and times moved on.

usage: expand-capture.py SOURCE OUT MEGABYTES

Each copy shifts every kernel serial by the capture's serial span and every
timestamp by its time span (plus one second), so the result reads like one
long, dense trail: no duplicate serials, no gaps, time moving forward.
DAEMON_* records carry auditd's own counter and are shifted by their own span.
"""
import re, sys

src, out, mb = sys.argv[1], sys.argv[2], float(sys.argv[3])
pat = re.compile(rb'msg=audit\((\d+)\.(\d{3}):(\d+)\)')
lines = open(src, 'rb').read().splitlines(keepends=True)
parsed = []
kser, dser, times = [], [], []
for l in lines:
    m = pat.search(l)
    if not m:
        continue
    sec, ms, ser = int(m.group(1)), int(m.group(2)), int(m.group(3))
    daemon = l.startswith(b'type=DAEMON_') or b' type=DAEMON_' in l[:80]
    (dser if daemon else kser).append(ser)
    times.append(sec * 1000 + ms)
    parsed.append((l[:m.start()], sec * 1000 + ms, ser, daemon, l[m.end():]))
kspan = max(kser) - min(kser) + 1
dspan = (max(dser) - min(dser) + 1) if dser else 1
tspan = max(times) - min(times) + 1000
target = int(mb * 1e6)
written = 0
copy = 0
with open(out, 'wb') as f:
    while written < target:
        chunk = []
        for head, t, ser, daemon, tail in parsed:
            t2 = t + copy * tspan
            s2 = ser + copy * (dspan if daemon else kspan)
            chunk.append(b'%smsg=audit(%d.%03d:%d)%s' % (head, t2 // 1000, t2 % 1000, s2 & 0xFFFFFFFF, tail))
        data = b''.join(chunk)
        f.write(data)
        written += len(data)
        copy += 1
print(f"{out}: {written} bytes, {copy} copies, {copy * len(parsed)} records", file=sys.stderr)
