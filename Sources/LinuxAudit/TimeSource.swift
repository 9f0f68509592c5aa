#if os(Linux)
import Glibc

/// Where contidd reads the time: the wall clock (record timestamps, held exits) and
/// the monotonic clock (timeouts, idle connections, batching). Tests substitute a
/// clock they advance by hand.
public protocol TimeSource: AnyObject {
    /// CLOCK_REALTIME in milliseconds since the epoch.
    var wallMilliseconds: UInt64 { get }
    /// CLOCK_MONOTONIC in milliseconds.
    var monotonicMilliseconds: UInt64 { get }
}

/// The kernel's clocks.
public final class SystemTimeSource: TimeSource, Sendable {
    public static let shared = SystemTimeSource()
    public init() {}

    public var wallMilliseconds: UInt64 { Self.read(CLOCK_REALTIME) }
    public var monotonicMilliseconds: UInt64 { Self.read(CLOCK_MONOTONIC) }

    private static func read(_ clock: clockid_t) -> UInt64 {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
    }
}
#endif
