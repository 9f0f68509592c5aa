#!/usr/bin/env python3
"""Writes a deterministic audit trail with containers in it, of any size, and its ground truth.

usage: gen-log.py [--source CAPTURE] [--containers N] [--seed S] [--numeric]
                  [--truth FILE] OUT MEGABYTES

The capture (default: the corpus's Linux 6.18 RAW capture) is repeated as
Benchmarks/expand-capture.py does: each copy moves every kernel serial and
timestamp on, so the result reads as one long trail. Over it live N containers
(default 200): each is registered at some time (a CONTAINER_OP op=set event and
a CONTAINER_INFO event with its labels, SPEC section 6) and dropped later
(op=drop); it lives for a span of the log's time, not all of it. About a
quarter are nested in a container alive over their whole life, some IDs are
reused by a later container with other labels, and container 1000001 lives
through exactly 1% of the log's time (the index benchmark's container).
While containers live, each kernel event goes to one of them with probability
1/2: its SYSCALL record gets ` record=1` and a CONTAINER_ID record
(`record=1 contid=CHAIN`, innermost first) follows its last record.

--numeric writes our record types as UNKNOWN[29xx], as auditd writes user
messages of types it does not know (stock ausearch reads that form).
--truth FILE writes the ground truth as JSON lines: one per container
({"container":ID,"parent":ID|null,"start":MS,"end":MS,"labels":{...}}), then one
per event with a CONTAINER_ID ({"serial":N,"time":MS,"chain":[ID,...]}).
The same arguments always give the same bytes.
"""
import argparse, json, os, random, re, sys

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--source", default=os.path.join(here, "..", "..", "shared", "corpus", "captured-linux-6.18-raw.log"))
ap.add_argument("--containers", type=int, default=200)
ap.add_argument("--seed", type=int, default=10)
ap.add_argument("--numeric", action="store_true")
ap.add_argument("--truth")
ap.add_argument("out")
ap.add_argument("megabytes", type=float)
args = ap.parse_args()
if not os.path.exists(args.source):
    args.source = "/work/shared/corpus/captured-linux-6.18-raw.log"

rng = random.Random(args.seed)
pat = re.compile(rb'msg=audit\((\d+)\.(\d{3}):(\d+)\)')
lines = open(args.source, 'rb').read().splitlines(keepends=True)

# Source events: (first-line index order) lists of (head, time_ms, serial, daemon, tail).
parsed = []
for l in lines:
    m = pat.search(l)
    if not m:
        continue
    t = int(m.group(1)) * 1000 + int(m.group(2))
    daemon = l.startswith(b'type=DAEMON_')
    parsed.append((l[:m.start()], t, int(m.group(3)), daemon, l[m.end():]))
kser = [p[2] for p in parsed if not p[3]]
dser = [p[2] for p in parsed if p[3]] or [0]
reserve = 4 * args.containers  # serials per copy kept for our own records
kspan = max(kser) - min(kser) + 1 + reserve
dspan = max(dser) - min(dser) + 1
t0 = min(p[1] for p in parsed)
tspan = max(p[1] for p in parsed) - t0 + 1000
srcbytes = sum(len(l) for l in lines)
copies = max(1, int(args.megabytes * 1e6 / srcbytes + 0.999))
total_ms = copies * tspan
kbase = max(kser) + 1  # first reserved serial of copy 0

def typename(name, number):
    return ("UNKNOWN[%d]" % number if args.numeric else name).encode()

# Containers: id, parent, [start, end) in log milliseconds from t0, labels.
containers = []
def alive(c, t):
    return c["start"] <= t < c["end"]
ids = list(range(1, args.containers + 1))
for i in range(args.containers):
    if i == 0:
        cid, start = 1000001, int(total_ms * 0.40)
        end = start + max(1, total_ms // 100)
    else:
        cid = i + 1 if i < args.containers - 10 else rng.randint(2, args.containers - 10)  # last 10 reuse IDs
        life = int(total_ms * rng.uniform(0.01, 0.15))
        start = rng.randint(0, max(0, total_ms - life - 1))
        end = start + life
    containers.append({"container": cid, "parent": None, "start": start, "end": end,
                       "labels": {"name": "c%d-%d" % (cid, i), "image": "registry/app%d:1.%d" % (i % 7, i % 3),
                                  "team": rng.choice(["payments", "search", "infra"]),
                                  "tier": rng.choice(["front", "back"])}})
# Reused IDs must not overlap the earlier holder's life: move the later one after it.
by_id = {}
for c in containers:
    prev = by_id.get(c["container"])
    if prev and c["start"] < prev["end"] + 1000:
        life = c["end"] - c["start"]
        c["start"] = min(prev["end"] + 1000, total_ms - 2)
        c["end"] = min(c["start"] + life, total_ms - 1)
    by_id[c["container"]] = c
# Nesting: about a quarter get a parent alive over their whole life.
for c in containers[1:]:
    if rng.random() < 0.25:
        hosts = [p for p in containers if p is not c and p["parent"] is None and p["container"] != c["container"]
                 and p["start"] < c["start"] and c["end"] < p["end"]]
        if hosts:
            c["parent"] = rng.choice(hosts)["container"]
            c["parent_obj"] = [p for p in hosts if p["container"] == c["parent"]][0]

def chain(c):
    out = [c["container"]]
    p = c.get("parent_obj")
    while p is not None:
        out.append(p["container"])
        p = p.get("parent_obj")
    return out

def chain_text(ch):
    return ",".join([str(ch[0])] + ["^%d" % x for x in ch[1:]]).encode()

# Our own events, by the copy whose time span holds them.
ours = {}
for n, c in enumerate(containers):
    labels = "team=%s,tier=%s" % (c["labels"]["team"], c["labels"]["tier"])
    ch = chain(c)
    reg = (c["start"], [
        b'type=%s msg=audit(%%s): op=set opid=%d contid=%s old-contid=-1 pid=%d uid=0 auid=1000 ses=3 comm="runc" exe="/usr/bin/runc" res=1\n'
        % (typename("CONTAINER_OP", 2900), 20000 + n, str(c["container"]).encode(), 19000 + n),
        b'type=%s msg=audit(%%s): opid=%d contid=%d runtime="runc" id="%032x" name="%s" image="%s" pod="prod/%s" labels="%s"\n'
        % (typename("CONTAINER_INFO", 2908), 20000 + n, c["container"], rng.getrandbits(128),
           c["labels"]["name"].encode(), c["labels"]["image"].encode(), c["labels"]["name"].encode(), labels.encode()),
    ])
    drop = (c["end"], [
        b'type=%s msg=audit(%%s): op=drop opid=%d contid=-1 old-contid=%d res=1\n'
        % (typename("CONTAINER_OP", 2900), 20000 + n, c["container"]),
    ])
    for when, recs in (reg, drop):
        for r in recs:
            ours.setdefault(when // tspan, []).append((when, r))
    c["chain"] = ch

truth = open(args.truth, "w") if args.truth else None
if truth:
    for c in containers:
        truth.write(json.dumps({"container": c["container"], "parent": c["parent"], "start": c["start"] + t0,
                                "end": c["end"] + t0, "labels": c["labels"]}) + "\n")

cid_type = typename("CONTAINER_ID", 2901)
# The source's events by serial (kernel records), in the order their first records appear.
events = {}
for p in parsed:
    if not p[3]:
        events.setdefault(p[2], []).append(p)

written = 0
with open(args.out, 'wb') as f:
    for copy in range(copies):
        shift_t = copy * tspan
        base_t = t0 + shift_t
        live = [c for c in containers if c["start"] < shift_t + tspan and c["end"] > shift_t]
        owner = {}
        for ser in events:
            t = events[ser][0][1] - t0 + shift_t
            here_now = [c for c in live if alive(c, t)]
            if here_now and rng.random() < 0.5:
                owner[ser] = rng.choice(here_now)
        inserted = sorted(ours.get(copy, []), key=lambda x: x[0])
        nextser = kbase + copy * kspan + max(kser) - min(kser) + 1
        out = []
        last_of = {ser: recs[-1] for ser, recs in events.items()}
        for p in parsed:
            head, t, ser, daemon, tail = p
            t2 = t + shift_t
            while inserted and inserted[0][0] + t0 <= t2:
                when, rec = inserted.pop(0)
                tt = when + t0
                out.append(rec % (b'%d.%03d:%d' % (tt // 1000, tt % 1000, nextser)))
                nextser += 1
            s2 = (ser + copy * (dspan if daemon else kspan)) & 0xFFFFFFFF
            stamp = b'msg=audit(%d.%03d:%d)' % (t2 // 1000, t2 % 1000, s2)
            c = None if daemon else owner.get(ser)
            if c is not None and head == b'type=SYSCALL ':
                out.append(head + stamp + tail.rstrip(b'\n') + b' record=1\n')
            else:
                out.append(head + stamp + tail)
            if c is not None and last_of[ser] is p:
                out.append(b'type=%s %s: record=1 contid=%s\n' % (cid_type, stamp, chain_text(c["chain"])))
                if truth:
                    truth.write(json.dumps({"serial": s2, "time": t2, "chain": c["chain"]}) + "\n")
        for when, rec in inserted:  # after the copy's last kernel record
            tt = when + t0
            out.append(rec % (b'%d.%03d:%d' % (tt // 1000, tt % 1000, nextser)))
            nextser += 1
        data = b''.join(out)
        f.write(data)
        written += len(data)
if truth:
    truth.close()
print(f"{args.out}: {written} bytes, {copies} copies, {len(containers)} containers, {total_ms} ms of log time", file=sys.stderr)
