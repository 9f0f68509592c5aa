#if os(Linux)
import Glibc

/// The descriptors of one poll(2) round, reused from round to round.
public struct PollSet {
    public private(set) var entries: [pollfd] = []
    public init() {}

    public mutating func removeAll() { entries.removeAll(keepingCapacity: true) }

    /// Adds `fd` (a negative one is ignored by poll) and returns its index.
    @discardableResult
    public mutating func add(_ fd: Int32, events: Int16) -> Int {
        entries.append(pollfd(fd: fd, events: events, revents: 0))
        return entries.count - 1
    }

    public func revents(_ index: Int) -> Int16 { entries[index].revents }
    public var count: Int { entries.count }

    /// Waits up to `timeoutMilliseconds`; returns how many descriptors are ready (0 on
    /// timeout or EINTR, when the caller goes round again).
    public mutating func wait(timeoutMilliseconds: Int32) throws -> Int {
        let n = count
        do {
            return Int(try entries.withUnsafeMutableBufferPointer { p in
                try Syscall.retryingOnce("poll") { Glibc.poll(p.baseAddress, nfds_t(n), timeoutMilliseconds) }
            })
        } catch LinuxAuditError.syscall(_, let e) where e == .interrupted {
            return 0
        }
    }
}

public enum Pause {
    /// Sleeps `milliseconds` (a signal may cut it short).
    public static func sleep(milliseconds: Int) {
        var ts = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
        nanosleep(&ts, nil)
    }

    /// Sleeps `microseconds` (a signal may cut it short).
    public static func sleep(microseconds: Int) {
        var ts = timespec(tv_sec: microseconds / 1_000_000, tv_nsec: (microseconds % 1_000_000) * 1000)
        nanosleep(&ts, nil)
    }
}
#endif
