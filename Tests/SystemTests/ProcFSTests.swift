import Glibc
import LinuxAudit
import Testing

@Suite struct ProcFSTests {
    @Test func scanFindsThisProcessWithItsParentStartTimeAndThreads() throws {
        let procfs = ProcFS()
        let entries = try procfs.processes()
        let me = try #require(entries.first { $0.pid == getpid() })
        let stat = try procfs.stat(pid: getpid())
        #expect(me.ppid == getppid())
        #expect(me.startTime == stat.startTime)
        #expect(stat.startTime > 0)
        #expect(stat.ppid == getppid())
        let status = try procfs.status(pid: getpid())
        #expect(status.tgid == getpid())
        #expect(status.ppid == getppid())
        #expect(status.uids == [getuid(), geteuid(), geteuid(), geteuid()])
        #expect(me.threads >= 1)
        #expect(entries.contains { $0.pid == 1 && $0.ppid == 0 })
        #expect(Set(entries.map(\.pid)).count == entries.count)
    }

    @Test func childStatStatusLinksAndStartTimeMatchTheKernel() throws {
        try requireRoot()
        let procfs = ProcFS()
        // A comm with spaces and parentheses: the stat parser must use the last ")".
        let dir = "/tmp/contid-procfs-\(getpid())"
        mkdir(dir, 0o700)
        defer { rmdir(dir) }
        let odd = "\(dir)/x) y (z"
        symlink("/bin/sleep", odd)
        defer { unlink(odd) }

        let connector = try ProcConnector(filter: [.fork])
        let child = try spawn([odd, "30"])
        var reaped = false
        defer { if !reaped { kill(child, SIGKILL); _ = try? waitChild(child) } }
        let fork = try #require(try collectEvents(on: connector) { involves($0, child) }.first { involves($0, child) })

        let stat = try procfs.stat(pid: child)
        #expect(stat.pid == child)
        #expect(stat.comm == "x) y (z")
        #expect(stat.ppid == getpid())
        #expect(stat.threads == 1)
        // Start time (ticks since boot) agrees with the proc connector's fork timestamp.
        let ticks = fork.timestampNS / (1_000_000_000 / UInt64(sysconf(Int32(_SC_CLK_TCK))))
        #expect(ticks >= stat.startTime && ticks - stat.startTime <= 1, "fork at tick \(ticks), stat says \(stat.startTime)")
        #expect(try procfs.processes().contains(ProcessEntry(pid: child, ppid: getpid(), startTime: stat.startTime, threads: 1)))

        let status = try procfs.status(pid: child)
        #expect(status.tgid == child && status.ppid == getpid() && status.threads == 1)
        #expect(status.uids == [0, 0, 0, 0])
        #expect(status.hasCapability(ProcessStatus.capAuditControl))
        #expect(try procfs.loginUID(pid: child) == procfs.loginUID(pid: getpid()))
        #expect(try procfs.sessionID(pid: child) == procfs.sessionID(pid: getpid()))
        #expect(try procfs.executable(pid: child) == realPath("/bin/sleep"))
        #expect(try procfs.children(pid: getpid()).contains(child))
        #expect(try procfs.children(pid: child).isEmpty)
        #expect(try procfs.isInInitialUserNamespace(pid: child))

        kill(child, SIGKILL)
        _ = try waitChild(child)
        reaped = true
        let error = #expect(throws: LinuxAuditError.self) { try procfs.stat(pid: child) }
        #expect(error?.errno == .noSuchProcess)
    }
}
