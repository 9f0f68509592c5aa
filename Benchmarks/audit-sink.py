#!/usr/bin/env python3
# The cheapest audit daemon there is: registers as the kernel's audit daemon, reads
# every record and throws it away. hostcost.sh runs it to measure the kernel's own
# cost of auditing with a set of rules (the floor any audit daemon sits on). With
# --connector it also subscribes to the proc connector (fork/exec/exit events, as
# contidd does) and discards those too: the kernel's cost of that subscription.
# Usage: audit-sink.py [--connector]   (stops on SIGTERM; prints the messages read)
import os, select, signal, socket, struct, sys

NETLINK_AUDIT, AUDIT_SET, AUDIT_STATUS_PID = 9, 1001, 4
NETLINK_CONNECTOR, CN_IDX_PROC, CN_VAL_PROC, PROC_CN_MCAST_LISTEN = 11, 1, 1, 1

audit = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
audit.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
audit.bind((0, 0))
status = struct.pack("=10I", AUDIT_STATUS_PID, 0, 0, os.getpid(), 0, 0, 0, 0, 0, 0)
audit.send(struct.pack("=IHHII", 16 + len(status), AUDIT_SET, 5, 1, 0) + status)
socks = [audit]
if "--connector" in sys.argv:
    cn = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
    cn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    cn.bind((os.getpid() + (1 << 22), CN_IDX_PROC))
    op = struct.pack("=I", PROC_CN_MCAST_LISTEN)
    msg = struct.pack("=IIIIHH", CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(op), 0) + op
    cn.send(struct.pack("=IHHII", 16 + len(msg), 3, 0, 0, os.getpid() + (1 << 22)) + msg)  # NLMSG_DONE
    socks.append(cn)
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)
n = 0
while not stop:
    try:
        ready, _, _ = select.select(socks, [], [], 0.5)
    except InterruptedError:
        continue
    for s in ready:
        try:
            s.recv(1 << 16)
            n += 1
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # ENOBUFS: the sink fell behind; it only counts
            pass
print(n)
