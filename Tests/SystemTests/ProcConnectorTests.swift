import Glibc
import LinuxAudit
import Testing

/// Reads events until `stop` is true for one (or `limit` passes); returns them all.
func collectEvents(on connector: ProcConnector, within limit: Duration = .seconds(20),
                   until stop: (ProcEvent) -> Bool) throws -> [ProcEvent] {
    let buffer = NetlinkReceiveBuffer()
    let clock = ContinuousClock()
    let deadline = clock.now + limit
    var events: [ProcEvent] = []
    var done = false
    while !done {
        let left = deadline - clock.now
        if left <= .zero { break }
        try connector.receive(into: buffer, timeout: left) { event in
            events.append(event)
            if stop(event) { done = true }
        }
    }
    return events
}

func involves(_ event: ProcEvent, _ pid: pid_t) -> Bool {
    switch event.kind {
    case .fork(_, _, let child, _): return child == pid
    case .exec(let p, _), .exit(let p, _, _, _, _, _), .comm(let p, _, _), .sid(let p, _): return p == pid
    default: return false
    }
}

@Suite struct ProcConnectorTests {
    @Test func forkExecExitOfASpawnedChildCarryExactPidsAndExitStatus() throws {
        try requireRoot()
        let connector = try ProcConnector()
        let thread = currentThreadID()
        let child = try spawn(["/bin/sh", "-c", "exit 3"])
        #expect(try waitChild(child) == 3 << 8)
        let events = try collectEvents(on: connector) {
            if case .exit(child, _, _, _, _, _) = $0.kind { return true } else { return false }
        }
        let mine = events.filter { involves($0, child) }
        // posix_spawn clones from the calling thread: the parent "pid" is its tid.
        #expect(mine.map(\.kind) == [
            .fork(parentPID: thread, parentTGID: getpid(), childPID: child, childTGID: child),
            .exec(pid: child, tgid: child),
            .exit(pid: child, tgid: child, exitCode: 768, exitSignal: UInt32(SIGCHLD), parentPID: thread, parentTGID: getpid()),
        ])
        #expect(mine.map(\.timestampNS) == mine.map(\.timestampNS).sorted())
        #expect(connector.gaps == 0)
        connector.close()
    }

    @Test func kernelFilterDeliversOnlyExecAndNonzeroExits() throws {
        try requireRoot()
        let connector = try ProcConnector(filter: [.exec, .nonzeroExit])
        let zero = try spawn(["/bin/true"])
        #expect(try waitChild(zero) == 0)
        let three = try spawn(["/bin/sh", "-c", "exit 3"])
        #expect(try waitChild(three) == 3 << 8)
        let events = try collectEvents(on: connector) {
            if case .exit(three, _, _, _, _, _) = $0.kind { return true } else { return false }
        }
        #expect(events.filter { involves($0, zero) }.map(\.kind) == [.exec(pid: zero, tgid: zero)])
        let threeKinds = events.filter { involves($0, three) }.map(\.kind)
        #expect(threeKinds.count == 2)
        #expect(threeKinds.first == .exec(pid: three, tgid: three))
        if case .exit(three, three, 768, _, _, getpid()) = threeKinds.last {} else {
            Issue.record("expected the non-zero exit of \(three), got \(threeKinds)")
        }
        #expect(!events.contains { if case .fork = $0.kind { true } else { false } })
    }

    @Test func overflowIsCountedAsAGapAndReadingGoesOn() throws {
        try requireRoot()
        // The smallest buffer the kernel allows holds only a few 76-byte events.
        let connector = try ProcConnector(receiveBufferSize: 1)
        var children: [pid_t] = []
        for _ in 0..<40 { children.append(try spawn(["/bin/true"])) }
        for child in children { _ = try waitChild(child) }
        // Reading goes on after the overflow: an event of a child started after it is read
        // (its fork comes first; a new child each second, in case the machine's other
        // processes filled the buffer again).
        let buffer = NetlinkReceiveBuffer()
        var gaps = 0
        var markers: Set<pid_t> = []
        var markerSeen = false
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        var markerStarted = clock.now
        while !markerSeen, clock.now < deadline {
            if gaps > 0, markers.isEmpty || clock.now - markerStarted > .seconds(1) {
                let marker = try spawn(["/bin/true"])
                _ = try waitChild(marker)
                markers.insert(marker)
                markerStarted = clock.now
            }
            let r = try connector.receive(into: buffer, timeout: .milliseconds(100)) { event in
                if markers.contains(where: { involves(event, $0) }) { markerSeen = true }
            }
            gaps += r.gaps
        }
        #expect(gaps >= 1)
        #expect(connector.gaps == gaps)
        #expect(markerSeen, "no event read after the overflow")
    }
}
