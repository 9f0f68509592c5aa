#!/usr/bin/env python3
"""Writes an audit trail of containers at work, for contid's fleet-store tests and benchmarks.

usage: container-trail.py OUT EVENTS [--node NAME] [--containers N] [--seed S] [--start EPOCH]

An orchestrator (pid 500) clones one first process per container and registers it
(CONTAINER_OP op=set, then CONTAINER_INFO with runtime, id, name, image, pod and user
labels); every fourth container's first process clones a child and registers it as a
nested container (chain N,^C). Then EVENTS events follow: processes of the containers
open files (key "etc", with a PATH record), exec (key "exec") and connect (key "net");
one in ten is the orchestrator's own (no container). Serials and times (1 ms apart)
move forward; with --node every record starts with node=NAME. Syscall events end with
EOE, as the kernel writes them.
"""
import argparse, random, sys

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("events", type=int)
p.add_argument("--node")
p.add_argument("--containers", type=int, default=40)
p.add_argument("--seed", type=int, default=12)
p.add_argument("--start", type=int, default=1764633600)
a = p.parse_args()
rnd = random.Random(a.seed)
prefix = f"node={a.node} " if a.node else ""
serial = 1000
ms = a.start * 1000
out = open(a.out, "w", buffering=1 << 20)

def stamp():
    return f"msg=audit({ms // 1000}.{ms % 1000:03d}:{serial})"

def syscall(nr, pid, ppid, comm, exe, key, exit_=0, success="yes"):
    return (f"{prefix}type=SYSCALL {stamp()}: arch=c000003e syscall={nr} success={success} exit={exit_} "
            f"a0=3 a1=7ffd a2=0 a3=0 items=0 ppid={ppid} pid={pid} auid=1000 uid=0 gid=0 euid=0 suid=0 "
            f"fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=3 comm=\"{comm}\" exe=\"{exe}\" key=\"{key}\"\n")

def eoe():
    return f"{prefix}type=EOE {stamp()}: \n"

def tick():
    global serial, ms
    serial += 1
    ms += 1

orch = 500
procs = []  # (pid, ppid, comm, exe)
nextpid = 1000
for c in range(1, a.containers + 1):
    cid = 1000 + c
    pid = nextpid; nextpid += 1
    out.write(syscall(56, orch, 1, "runc", "/usr/bin/runc", "fork", exit_=pid)); out.write(eoe()); tick()
    out.write(f"{prefix}type=CONTAINER_OP {stamp()}: op=set opid={pid} contid={cid} old-contid=-1 pid={orch} uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=1\n"); tick()
    out.write(f"{prefix}type=CONTAINER_INFO {stamp()}: opid={pid} contid={cid} runtime=\"runc\" id=\"c{c:04d}\" name=\"web-{c}\" image=\"registry/app:1.{c % 3}\" pod=\"prod/web-{c % 7}\" labels=\"team=t{c % 3},tier=front\"\n"); tick()
    procs.append((pid, orch, "nginx", "/usr/sbin/nginx"))
    if c % 4 == 0:
        child = nextpid; nextpid += 1
        nid = 5000 + c
        out.write(syscall(56, pid, orch, "nginx", "/usr/sbin/nginx", "fork", exit_=child)); out.write(eoe()); tick()
        out.write(f"{prefix}type=CONTAINER_OP {stamp()}: op=set opid={child} contid={nid} old-contid={cid} pid={pid} uid=0 auid=1000 ses=3 comm=\"nginx\" exe=\"/usr/sbin/nginx\" res=1\n"); tick()
        procs.append((child, pid, "worker", "/usr/bin/worker"))

files = ["/etc/passwd", "/etc/hosts", "/etc/shadow", "/etc/ld.so.cache"]
w = out.write
for i in range(a.events):
    r = rnd.random()
    if r < 0.1:
        pid, ppid, comm, exe = orch, 1, "runc", "/usr/bin/runc"
    else:
        pid, ppid, comm, exe = procs[int(r * 1e6) % len(procs)]
    k = i % 3
    if k == 0:
        w(syscall(257, pid, ppid, comm, exe, "etc", exit_=3))
        w(f"{prefix}type=PATH {stamp()}: item=0 name=\"{files[i % 4]}\" inode=131 dev=fd:00 mode=0100644 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0\n")
    elif k == 1:
        w(syscall(59, pid, ppid, comm, exe, "exec"))
    else:
        w(syscall(42, pid, ppid, comm, exe, "net", exit_=-111, success="no"))
    w(eoe())
    tick()
out.close()
