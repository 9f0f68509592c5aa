// Process identity: pid plus start time, so PID reuse never moves an ID.

/// A process as the kernel knows it at one moment: its pid (thread-group id,
/// initial pid namespace) and its start time. Live, `start` is the start time in
/// clock ticks from `/proc/PID/stat`; offline replay uses a synthetic generation.
public struct ProcessKey: Hashable, Sendable, Codable, CustomStringConvertible {
    public var pid: Int32
    public var start: UInt64

    public init(pid: Int32, start: UInt64) {
        self.pid = pid
        self.start = start
    }

    public var description: String { "\(pid)@\(start)" }
}

/// The process facts the registration checks rely on (ESRCH, EBUSY, EXDEV, nesting).
/// The engine's own table answers them by default; the live daemon substitutes
/// facts verified from the kernel (`/proc`, pidfds) at the moment of the request.
public protocol ProcessTopology {
    /// The start time of the live process `pid`, or nil when there is none.
    func startTime(of pid: Int32) -> UInt64?
    /// The parent pid of the live process `pid`, or nil when unknown.
    func parent(of pid: Int32) -> Int32?
    /// How many live child processes `pid` has (children of any of its threads).
    /// Threads are not asked about: they join their group's container (SPEC §4).
    func childCount(of pid: Int32) -> Int
}

extension ProcessTopology {
    func isAlive(_ process: ProcessKey) -> Bool {
        startTime(of: process.pid) == process.start
    }

    /// True when `ancestor` (alive) is found walking parent links up from `pid`, `pid` itself excluded.
    func isDescendant(_ pid: Int32, of ancestor: ProcessKey) -> Bool {
        guard isAlive(ancestor) else { return false }
        var current = pid
        var steps = 0
        while let p = parent(of: current), p > 0, p != current, steps < 65_536 {
            if p == ancestor.pid { return true }
            current = p
            steps += 1
        }
        return false
    }

    /// True when `ancestor` is `process` itself or one of its ancestors (both alive).
    func isAncestorOrSelf(_ ancestor: ProcessKey, of process: ProcessKey) -> Bool {
        if ancestor == process { return isAlive(process) }
        return isDescendant(process.pid, of: ancestor)
    }
}
