import ContainerEngine
import LinuxAudit
import TestSupport
import Testing

@testable import ContidDaemon

/// The tracker's held exits and thread-group rules, driven by hand: process events
/// queued, /proc mocked, time advanced by the test.
@Suite struct ProcessTrackerTests {
    let registry = ContainerRegistry()
    let events = QueuedProcessEvents()
    let processes = MockProcessSource()
    let clock = ManualTimeSource()
    let tracker: ProcessTracker

    init() throws {
        tracker = ProcessTracker(registry: registry, events: events, processes: processes, clock: clock,
                                 graceMilliseconds: 500)
        processes.add(.init(pid: 1, ppid: 0, startTime: 1))
        processes.add(.init(pid: 100, ppid: 1, startTime: 10))
        tracker.scan()
        try registry.register(writer: Writer(process: ProcessKey(pid: 1, start: 1), hasAuditControl: true, comm: "init", exe: "/sbin/init"),
                              target: ProcessKey(pid: 100, start: 10), id: 7)
        _ = registry.takeRecords()
    }

    /// A child forked, then exited: its FORK and EXIT are queued together.
    private func forkAndExit(_ pid: Int32, parent: Int32, start: UInt64) {
        processes.add(.init(pid: pid, ppid: parent, startTime: start))
        events.fork(parent: parent, child: pid)
        tracker.drain()
        processes.remove(pid)
        events.exit(pid, parent: parent)
        tracker.drain()
    }

    @Test func forkedChildInheritsAtForkEvenIfGoneFromProc() {
        processes.add(.init(pid: 200, ppid: 100, startTime: 20))
        events.fork(parent: 100, child: 200)
        processes.remove(200)  // exited before its FORK was read: start time unknown
        tracker.drain()
        #expect(registry.chain(of: 200).description == "7")
        #expect(registry.process(200)?.process == ProcessKey(pid: 200, start: 0))
        #expect(tracker.forks == 1)
    }

    @Test func exitIsHeldUntilTheStreamPassesIt() {
        forkAndExit(201, parent: 100, start: 21)
        let exitWall = clock.wallMilliseconds
        #expect(tracker.pendingExitCount == 1)
        // The stream is at the exit's time: its last records may still come.
        tracker.applyDueExits(streamMs: exitWall, now: clock.wallMilliseconds, streamIdle: false)
        #expect(registry.chain(of: 201).description == "7")
        // 50 ms past it (one coarse tick, with margin): the records are in.
        tracker.applyDueExits(streamMs: exitWall + 51, now: clock.wallMilliseconds, streamIdle: false)
        #expect(registry.process(201) == nil)
        #expect(tracker.pendingExitCount == 0)
    }

    @Test func idleStreamReleasesHeldExitsAfterTheGracePeriod() {
        forkAndExit(202, parent: 100, start: 22)
        clock.advance(milliseconds: 500)
        tracker.applyDueExits(streamMs: 0, now: clock.wallMilliseconds, streamIdle: true)
        #expect(registry.process(202) != nil)
        clock.advance(milliseconds: 1)
        tracker.applyDueExits(streamMs: 0, now: clock.wallMilliseconds, streamIdle: true)
        #expect(registry.process(202) == nil)
    }

    @Test func busyStreamWithoutOurRecordsReleasesAfterTenGracePeriods() {
        forkAndExit(203, parent: 100, start: 23)
        clock.advance(milliseconds: 5000)
        tracker.applyDueExits(streamMs: 0, now: clock.wallMilliseconds, streamIdle: false)
        #expect(registry.process(203) != nil)
        clock.advance(milliseconds: 1)
        tracker.applyDueExits(streamMs: 0, now: clock.wallMilliseconds, streamIdle: false)
        #expect(registry.process(203) == nil)
    }

    @Test func reusedPIDAppliesTheHeldExitFirst() {
        forkAndExit(204, parent: 100, start: 24)
        // pid 204 is reused by a host process before the held exit fell due.
        processes.add(.init(pid: 204, ppid: 1, startTime: 30))
        events.fork(parent: 1, child: 204)
        tracker.drain()
        #expect(registry.process(204)?.process == ProcessKey(pid: 204, start: 30))
        #expect(registry.chain(of: 204).description == "-1")
        #expect(tracker.pendingExitCount == 1)
        tracker.applyDueExits(streamMs: clock.wallMilliseconds + 100, now: clock.wallMilliseconds, streamIdle: false)
        #expect(registry.process(204)?.process == ProcessKey(pid: 204, start: 30))
    }

    @Test func leaderExitOfALiveThreadGroupIsCancelledAndTheLastThreadEndsIt() {
        var p = MockProcessSource.Process(pid: 205, ppid: 100, startTime: 25)
        p.threads = [205, 206]
        processes.add(p)
        events.fork(parent: 100, child: 205)
        events.fork(parent: 205, child: 205, thread: 206)
        tracker.drain()
        // The leader calls pthread_exit: a zombie leader, thread 206 still runs.
        events.exit(205)
        tracker.drain()
        processes.table[205]!.state = UInt8(ascii: "Z")
        tracker.applyDueExits(streamMs: clock.wallMilliseconds + 100, now: clock.wallMilliseconds, streamIdle: false)
        #expect(tracker.leaderExitsCancelled == 1)
        #expect(registry.chain(of: 205).description == "7")
        // The last thread exits: the group is gone from /proc when the exit falls due.
        events.exit(205, thread: 206)
        tracker.drain()
        #expect(tracker.pendingExitCount == 1)
        processes.remove(205)
        tracker.applyDueExits(streamMs: clock.wallMilliseconds + 100, now: clock.wallMilliseconds, streamIdle: false)
        #expect(registry.process(205) == nil)
    }

    @Test func connectorOverflowRescansProc() {
        processes.add(.init(pid: 300, ppid: 100, startTime: 40))
        events.gapsToReport = 1
        tracker.drain()
        #expect(tracker.connectorGaps == 1)
        #expect(tracker.rescans == 2)
        // Found by the scan under its parent: it inherited the container.
        #expect(registry.chain(of: 300).description == "7")
    }

    @Test func silentConnectorIsResubscribedUnfilteredThenFails() {
        let clock = self.clock
        events.onWait = { clock.advance(milliseconds: UInt64($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000)) }
        #expect(throws: DaemonError.self) { try tracker.verifySubscription() }
        #expect(events.resubscriptions == 1)
    }
}
