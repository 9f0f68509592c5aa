import AuditCodec
import AuditPipeline
import Glibc
import LinuxAudit
import Testing

/// Registration on the live kernel through a release contidd: a multi-threaded
/// target (a container's first process has threads when its hook runs), the writer
/// of `out=$(contid set ...)`, and the bound on refusal records (SPEC §4, §6).
/// Serialized, and across processes by the audit flock.
@Suite(.serialized)
struct ThreadGroupRegistrationTests {
    static let key = "contid-threads"

    /// A python3 process with five threads besides its main one, each named
    /// `workerN` (comm is per thread, so a record's comm= says which thread made it).
    /// When released through `$D/go`, worker0 opens `$D/w/file` for writing.
    static let threadedProgram = """
        import ctypes, sys, threading
        libc = ctypes.CDLL(None)
        ready = threading.Barrier(6)
        go = threading.Event()
        def worker(i):
            libc.prctl(15, b"worker%d" % i, 0, 0, 0)  # PR_SET_NAME, this thread only
            ready.wait()
            go.wait()
            if i == 0:
                with open(sys.argv[1] + "/w/file", "a") as f:
                    f.write("thread\\n")
                print("tid=%d" % threading.get_native_id(), flush=True)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        ready.wait()
        print("ready", flush=True)
        with open(sys.argv[1] + "/go") as f:
            f.read()
        go.set()
        for t in threads:
            t.join()

        """

    @Test func aThreadsIDIsRefusedWithESRCHNamingItsProcess() throws {
        try withDaemon(rules: { _ in "" }) { daemon, _ in
            try write(Self.threadedProgram, to: daemon.root + "/threads.py")
            try makeFifo(daemon.root + "/go")
            let out = try daemon.shell("""
                /usr/bin/python3 $D/threads.py $D > $D/py.out 2>&1 & t=$!
                echo "t=$t"
                i=0
                while ! grep -q ready $D/py.out 2>/dev/null && [ $i -lt 400 ]; do busybox sleep 0.05; i=$((i+1)); done
                tid=$(ls /proc/$t/task | grep -v "^$t$" | head -1)
                echo "tid=$tid"
                msg=$($CONTID set $tid 4546 2>&1); echo "rc=$?"
                echo "msg=$msg"
                echo "get=$($CONTID get $t)"
                echo go > $D/go
                wait $t
                """)
            let v = DaemonTests.values(out)
            let t = try #require(v["t"]), tid = try #require(v["tid"])
            #expect(tid != t)
            #expect(v["rc"] == "1", "\(out)")
            let msg = out.split(separator: "\n").first { $0.hasPrefix("msg=") }.map { String($0.dropFirst(4)) }
            #expect(msg == "ESRCH: \(tid) is a thread of process \(t), not a process; an ID belongs to a whole process (its thread group): name process \(t)", "\(out)")
            #expect(v["get"] == "-1", "\(out)")
        }
    }

    @Test func multiThreadedTargetRegistersAndANonLeaderThreadsSyscallCarriesTheChain() throws {
        try withDaemon(rules: { "-w \($0)/w -p wa -k \(Self.key)\n" }) { daemon, _ in
            try write(Self.threadedProgram, to: daemon.root + "/threads.py")
            try makeFifo(daemon.root + "/go")
            let out = try daemon.shell("""
                echo "sh=$$"
                /usr/bin/python3 $D/threads.py $D > $D/py.out 2>&1 & t=$!
                echo "t=$t"
                i=0
                while ! grep -q ready $D/py.out 2>/dev/null && [ $i -lt 400 ]; do busybox sleep 0.05; i=$((i+1)); done
                echo "threads=$(ls /proc/$t/task | wc -l)"
                $CONTID set $t 4545; echo "rc=$?"
                echo "get=$($CONTID get $t)"
                echo go > $D/go
                wait $t
                cat $D/py.out
                """)
            let v = DaemonTests.values(out)
            let shPID = try #require(v["sh"]), t = try #require(v["t"].flatMap { Int32($0) })
            #expect(v["threads"] == "6", "\(out)")
            #expect(v["rc"] == "0", "\(out)")
            #expect(v["get"] == "4545", "\(out)")
            let tid = try #require(v["tid"].flatMap { Int32($0) }, "\(out)")
            #expect(tid != t)

            let (auid, ses) = ownLoginIDs()
            let tail = "pid=\(shPID) uid=0 auid=\(auid) ses=\(ses) comm=\"sh\" exe=\"\(realPath("/bin/sh"))\""
            try daemon.waitForLog { _ in ((try? DaemonTests.setRecords(daemon)) ?? []).count >= 1 }
            #expect(try DaemonTests.setRecords(daemon) == ["op=set opid=\(t) contid=4545 old-contid=-1 \(tail) res=1"])

            // worker0's open: its SYSCALL names the group (pid=) and the thread (comm=).
            let byWorker = { (events: [LoggedEvent]) in
                events.filter { $0.key == Self.key && $0.pid == t && $0.syscall?.field("comm")?.decodedString == "worker0" }
            }
            try daemon.waitForLog { !byWorker($0).isEmpty }
            let all = try daemon.events()
            let events = byWorker(all)
            #expect(events.count == 1, "\(all.map(\.records))")
            #expect(events.first?.chain == "4545")
            #expect(events.first?.containerIDs.count == 1)
            #expect(try daemon.status()["kernel_lost"] == 0)
        }
    }

    /// `out=$(contid set $! 42 2>&1)` in bash: the $(...) subshell runs contid, so it
    /// is the writer, and the shell's child is not its descendant. The message names
    /// the subshell and says what to do; doing it registers.
    @Test func setInACommandSubstitutionFailsWithEXDEVNamingTheSubshellAndTheFix() throws {
        try withDaemon(rules: { _ in "" }) { daemon, _ in
            let out = try daemon.shell("""
                /bin/bash -c '
                busybox sleep 30 & t=$!
                echo "sh=$$"; echo "t=$t"
                out=$($CONTID set $t 42 2>&1)
                echo "$out"
                $CONTID set $t 42; echo "rc=$?"
                kill $t'
                """)
            let v = DaemonTests.values(out)
            let shPID = try #require(v["sh"]), t = try #require(v["t"])
            #expect(v["rc"] == "0", "\(out)")
            let (auid, ses) = ownLoginIDs()
            let bash = realPath("/bin/bash")
            try daemon.waitForLog { _ in ((try? DaemonTests.setRecords(daemon)) ?? []).count >= 2 }
            let records = try DaemonTests.setRecords(daemon)
            #expect(records.count == 2, "\(records)")
            // The refused attempt's writer is the subshell: its pid is in the record.
            let refused = try #require(records.first)
            let writer = try #require(refused.split(separator: " ").first { $0.hasPrefix("pid=") }?.dropFirst(4))
            #expect(writer != shPID)
            #expect(refused == "op=set opid=\(t) contid=42 old-contid=-1 pid=\(writer) uid=0 auid=\(auid) ses=\(ses) comm=\"bash\" exe=\"\(bash)\" res=0 errno=EXDEV")
            #expect(out.contains("\nEXDEV: process \(t) is not a descendant of the writer, process \(writer) (bash); contid acts for the process that runs it, and in $(...) that is a subshell: run contid set directly from the shell that started the target\n"), "\(out)")
            #expect(records.last == "op=set opid=\(t) contid=42 old-contid=-1 pid=\(shPID) uid=0 auid=\(auid) ses=\(ses) comm=\"bash\" exe=\"\(bash)\" res=1")
        }
    }

    /// 200 refused requests from an unprivileged user as fast as `contid` starts: each
    /// is answered with EPERM; the log holds at most 10 of their records per second,
    /// and set-suppressed records count exactly the rest.
    @Test func refusalsOfOneUserBeyondTenASecondAreCountedNotRecorded() throws {
        try withDaemon(rules: { _ in "" }) { daemon, _ in
            // Start just after a second begins, so that the first second is a full one.
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            usleep(useconds_t(1_000_000 - now.tv_nsec / 1000 + 20_000))
            let clock = ContinuousClock()
            let began = clock.now
            let out = try daemon.shell("""
                setpriv --reuid 65534 --regid 65534 --clear-groups /bin/sh -c '
                busybox sleep 60 & t=$!
                echo "w=$$"
                i=0
                while [ $i -lt 200 ]; do $CONTID set $t 501; echo "rc=$?"; i=$((i+1)); done
                kill $t'
                """)
            let elapsed = clock.now - began
            let writer = try #require(DaemonTests.values(out)["w"])
            let lines = out.split(separator: "\n")
            #expect(lines.filter { $0 == "rc=1" }.count == 200, "\(out)")
            #expect(lines.filter { $0 == "EPERM: process \(writer) lacks CAP_AUDIT_CONTROL and has no capcontid" }.count == 200)

            // The last second's summary is written once a later second has begun: at the
            // next request (or the daemon's own tick).
            usleep(1_100_000)
            _ = try daemon.request(.get(pid: getpid()))
            /// The EPERM records between two summaries, by their timestamp's second.
            func tally() throws -> (recorded: Int, suppressed: Int, runs: [[UInt64]], summaries: Int) {
                var recorded = 0, suppressed = 0, summaries = 0
                var runs: [[UInt64]] = [[]]
                for r in try daemon.events().flatMap(\.records) where r.type == .containerOp && r["uid"] == "65534" {
                    if r["op"] == "set", r["errno"] == "EPERM" {
                        recorded += 1
                        runs[runs.count - 1].append(r.time.seconds)
                    } else if r["op"] == "set-suppressed" {
                        #expect(r["errno"] == "EPERM")
                        #expect(r["res"] == "0")
                        suppressed += Int(r["count"] ?? "") ?? 0
                        summaries += 1
                        runs.append([])
                    }
                }
                return (recorded, suppressed, runs, summaries)
            }
            try daemon.waitForLog { _ in ((try? tally()).map { $0.recorded + $0.suppressed }) == 200 }
            let t = try tally()
            #expect(t.recorded + t.suppressed == 200, "recorded \(t.recorded), suppressed \(t.suppressed)")
            // A second's records come before its summary, so between two summaries there are
            // at most 10 per second they span (several when a second had nothing to suppress).
            // Counted per run, not per timestamp second: the kernel stamps with a coarse clock,
            // which can put a second's first record in the one before.
            #expect(t.runs.allSatisfy { $0.count <= 10 * Set($0).count }, "\(t.runs)")
            let seconds = Int(elapsed.components.seconds) + 2  // the seconds the burst can touch
            #expect(t.recorded <= 10 * seconds, "\(t.recorded) records in at most \(seconds) seconds")
            #expect(t.summaries >= 1 && t.summaries <= seconds)
            #expect(t.suppressed >= 200 - 10 * seconds)
            #expect(try daemon.status()["kernel_lost"] == 0)
        }
    }

    /// A registration right after a burst of the same user's refusals (self-sets,
    /// EXDEV) is recorded: only refusals are limited.
    @Test func successRightAfterABurstOfRefusalsIsRecorded() throws {
        try withDaemon(rules: { _ in "" }) { daemon, _ in
            let out = try daemon.shell("""
                echo "sh=$$"
                i=0
                while [ $i -lt 40 ]; do $CONTID set $$ 600 2>/dev/null; i=$((i+1)); done
                busybox sleep 30 & t=$!
                echo "t=$t"
                $CONTID set $t 601; echo "rc=$?"
                kill $t
                """)
            let v = DaemonTests.values(out)
            let shPID = try #require(v["sh"]), t = try #require(v["t"])
            #expect(v["rc"] == "0", "\(out)")
            usleep(1_100_000)
            _ = try daemon.request(.get(pid: getpid()))
            func tally() throws -> (refused: Int, suppressed: Int, succeeded: [String]) {
                var refused = 0, suppressed = 0
                var succeeded: [String] = []
                for r in try daemon.events().flatMap(\.records) where r.type == .containerOp && r["uid"] == "0" {
                    if r["op"] == "set", r["errno"] == "EXDEV", r["opid"] == shPID { refused += 1 }
                    if r["op"] == "set-suppressed" { suppressed += Int(r["count"] ?? "") ?? 0 }
                    if r["op"] == "set", r["res"] == "1" { succeeded.append(r["opid"] ?? "?") }
                }
                return (refused, suppressed, succeeded)
            }
            try daemon.waitForLog { _ in ((try? tally()).map { $0.refused + $0.suppressed == 40 && !$0.succeeded.isEmpty }) == true }
            let counts = try tally()
            #expect(counts.refused + counts.suppressed == 40, "\(counts)")
            #expect(counts.suppressed >= 1, "\(counts)")
            #expect(counts.succeeded == [t])
        }
    }
}
