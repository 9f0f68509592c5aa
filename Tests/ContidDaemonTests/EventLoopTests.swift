import Glibc
import TestSupport
import Testing

@testable import ContidDaemon

/// The loop's quiet spell (batch_ms): the stream parts rest, the others (registrations,
/// signals) are served at once — a hook waiting on contidd never waits out a batch.
@Suite struct EventLoopTests {
    final class Pipe {
        var fds: [Int32] = [-1, -1]
        init() { _ = fds.withUnsafeMutableBufferPointer { pipe($0.baseAddress!) } }
        deinit { close(fds[0]); close(fds[1]) }
        func put() { var b: UInt8 = 1; _ = write(fds[1], &b, 1) }
        func take() { var b: UInt8 = 0; _ = read(fds[0], &b, 1) }
    }

    @Test func duringAQuietSpellOnlyTheOtherPartsArePolledAndThoseAreServedAtOnce() {
        let clock = ManualTimeSource()
        let loop = EventLoop(clock: clock)
        let stream = Pipe(), registrations = Pipe()
        var streamReads = 0, registrationReads = 0, idleHousekeeping = 0
        loop.add(stream: true, descriptor: { stream.fds[0] }) { [unowned loop] in
            stream.take()
            streamReads += 1
            loop.quiet(forMilliseconds: 50)
            return true
        }
        loop.add(descriptor: { registrations.fds[0] }) {
            registrations.take()
            registrationReads += 1
            return false
        }
        loop.housekeeping = { idle in if idle { idleHousekeeping += 1 } }
        var last: UInt64 = 0
        stream.put()
        loop.round(lastHousekeeping: &last)
        #expect(streamReads == 1)
        #expect(loop.isQuiet)
        // Records wait and a request comes: only the request is served, and the round does
        // not sleep (poll returns at once: the request is ready).
        stream.put()
        registrations.put()
        loop.round(lastHousekeeping: &last)
        #expect(registrationReads == 1)
        #expect(streamReads == 1)
        #expect(idleHousekeeping == 0, "a quiet spell is not idleness")
        // When the spell is over the stream is read again.
        clock.advance(milliseconds: 50)
        #expect(!loop.isQuiet)
        loop.round(lastHousekeeping: &last)
        #expect(streamReads == 2)
    }
}
