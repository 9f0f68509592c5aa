import LinuxAudit

/// A clock the test moves by hand, as swift-nio's EmbeddedEventLoop.advanceTime:
/// nothing happens "later" until the test says so.
public final class ManualTimeSource: TimeSource {
    public private(set) var wallMilliseconds: UInt64
    public private(set) var monotonicMilliseconds: UInt64

    public init(wall: UInt64 = 1_796_000_000_000, monotonic: UInt64 = 1_000_000) {
        wallMilliseconds = wall
        monotonicMilliseconds = monotonic
    }

    /// Moves both clocks forward.
    public func advance(milliseconds: UInt64) {
        wallMilliseconds += milliseconds
        monotonicMilliseconds += milliseconds
    }
}
