import AuditPipeline
import Glibc
import LinuxAudit
import SystemPackage
import TestSupport
import Testing

@testable import ContidDaemon

/// The registration socket's limits, on a real AF_UNIX socket with the time moved by
/// hand: no kernel audit involved.
@Suite struct RegistrationServerTests {
    let dir = makeTemporaryDirectory("server")
    let clock = ManualTimeSource()
    final class Count { var malformed = 0 }
    let count = Count()

    private func server(limits: RegistrationServer.Limits = .init()) throws -> RegistrationServer {
        let listener = try UnixListener(path: dir + "/contid.sock", mode: 0o666)
        let count = self.count
        return RegistrationServer(listener: listener, clock: clock, limits: limits,
                                  refuseMalformed: { count.malformed += 1; return .error(errno: "EINVAL", message: $0.reason) },
                                  answer: { request, _, _ in [.ok("answered \(request)")] })
    }

    /// One poll round over the server's descriptors, waiting at most 1 s for something to be ready.
    private func round(_ s: RegistrationServer) throws {
        var set = PollSet()
        s.register(in: &set)
        _ = try set.wait(timeoutMilliseconds: 1000)
        s.serviceReady(set)
    }

    @Test func connectionsBeyondTheLimitAreRefusedAndCounted() throws {
        defer { removeTree(dir) }
        var limits = RegistrationServer.Limits()
        limits.maxConnections = 3
        let s = try server(limits: limits)
        let clients = try (0..<5).map { _ in try UnixConnection.connect(path: dir + "/contid.sock") }
        s.acceptConnections()
        #expect(s.connectionCount == 3)
        #expect(s.counters.refused == 2)
        _ = clients
    }

    @Test func idleConnectionsAreClosedAfterTheIdleLimit() throws {
        defer { removeTree(dir) }
        let s = try server()
        let a = try UnixConnection.connect(path: dir + "/contid.sock")
        let b = try UnixConnection.connect(path: dir + "/contid.sock")
        s.acceptConnections()
        #expect(s.connectionCount == 2)
        clock.advance(milliseconds: 4000)
        // b makes progress: its idle time starts again.
        try b.send(RegistrationRequest.ps.encoded())
        try round(s)
        #expect(try b.receive(timeout: .seconds(2)).map { String(decoding: $0, as: UTF8.self) } == "ok answered ps")
        clock.advance(milliseconds: 1001)
        s.closeIdleConnections()
        #expect(s.connectionCount == 1)
        #expect(s.counters.closedIdle == 1)
        clock.advance(milliseconds: 4000)
        s.closeIdleConnections()
        #expect(s.connectionCount == 0)
        #expect(s.counters.closedIdle == 2)
        _ = a
    }

    @Test func malformedRequestIsAnsweredWithEINVALAndCounted() throws {
        defer { removeTree(dir) }
        let s = try server()
        let c = try UnixConnection.connect(path: dir + "/contid.sock")
        s.acceptConnections()
        try c.send(Array("frobnicate 12".utf8))
        try round(s)
        let reply = try #require(try c.receive(timeout: .seconds(2)))
        var reason = ""
        do { _ = try RegistrationRequest.decode(Array("frobnicate 12".utf8)) } catch { reason = error.reason }
        #expect(!reason.isEmpty)
        #expect(String(decoding: reply, as: UTF8.self) == "err EINVAL \(reason)")
        #expect(count.malformed == 1)
    }

    @Test func aPidfdSentWithARequestNamesItsTarget() throws {
        defer { removeTree(dir) }
        let listener = try UnixListener(path: dir + "/contid.sock", mode: 0o666)
        let count = self.count
        let s = RegistrationServer(listener: listener, clock: clock,
                                   refuseMalformed: { count.malformed += 1; return .error(errno: $0.errno, message: $0.reason) },
                                   answer: { request, _, target in [.ok("\(request.pid ?? 0) target \(target.map { "\($0.pid)" } ?? "none")")] })
        let c = try UnixConnection.connect(path: dir + "/contid.sock")
        s.acceptConnections()
        func exchange(_ request: RegistrationRequest, attaching fd: FileDescriptor?) throws -> String {
            if let fd { try c.send(request.encoded(), attaching: fd) } else { try c.send(request.encoded()) }
            try round(s)
            return String(decoding: try #require(try c.receive(timeout: .seconds(2))), as: UTF8.self)
        }
        let me = try PinnedProcess(pid: getpid())
        // The pid in the request is the client's view; the pidfd decides.
        #expect(try exchange(.get(pid: 4242), attaching: me.descriptor) == "ok 4242 target \(getpid())")
        #expect(try exchange(.get(pid: 4242), attaching: nil) == "ok 4242 target none")
        let notPidfd = try FileDescriptor.open("/dev/null", .readOnly)
        defer { try? notPidfd.close() }
        let refused = try exchange(.get(pid: 1), attaching: notPidfd)
        #expect(refused.hasPrefix("err EINVAL descriptor ") && refused.hasSuffix(" sent as a pidfd is not one (no Pid: in its fdinfo)"))
        #expect(try exchange(.ps, attaching: me.descriptor) == "err EINVAL ps names no process; it takes no pidfd")
        #expect(count.malformed == 2)
    }
}
