import AuditCodec

// The registration socket is open to every local user, and every attempt is
// recorded (SPEC §6): without a bound, anyone could fill the audit log with
// refusals. Refusals are recorded one by one up to a per-uid rate; beyond it they
// are counted and summarized once per uid and second. Successes are never limited.
// No clock inside: the caller passes the time, so tests drive it by hand.

/// Which kind of refused attempt: a `set` (CONTAINER_OP) or a `capcontid` (SET_CAPCONTID).
public enum RegistrationAttempt: Sendable, Hashable {
    case set, capContID
}

/// Decides which refused attempts are recorded, and summarizes the others.
///
/// Seconds are whole seconds of the caller's clock (`now / 1000`); pass the wall
/// clock so that they are the seconds of the records' timestamps. One budget per
/// uid covers both kinds of attempt; a summary is written per kind:
///
///     type=CONTAINER_OP op=set-suppressed uid=1000 count=15 errno=EPERM res=0
///     type=SET_CAPCONTID op=capcontid-suppressed uid=1000 count=3 errno=EPERM res=0
///
/// `errno=` is the errno most of the suppressed attempts had (ties: the lower errno).
public struct RefusalRateLimit {
    /// Refusals recorded per uid and second.
    public let perSecond: Int
    /// Refused attempts whose record was not written, since start.
    public private(set) var suppressed = 0

    private struct Second {
        var second: UInt64
        var recorded = 0
        /// Suppressed attempts by errno, for sets and for capcontid.
        var sets: [ContainerErrno: Int] = [:]
        var capContIDs: [ContainerErrno: Int] = [:]
    }

    private var seconds: [UInt32: Second] = [:]
    /// Summaries of seconds that ended, in the order they ended, not yet taken.
    private var ended: [ContainerRecord] = []

    public init(perSecond: Int = 10) {
        self.perSecond = max(0, perSecond)
    }

    /// Whether the record of this refused attempt is written: true for the first
    /// `perSecond` refusals of `uid` in the second of `now` (milliseconds), else
    /// false, and the attempt is counted for that second's summary.
    public mutating func admit(_ attempt: RegistrationAttempt, uid: UInt32, errno: ContainerErrno, now: UInt64)
        -> Bool
    {
        let second = now / 1000
        if let current = seconds[uid], current.second != second {
            // A later second (or the clock went back): that second is over.
            summarize(uid: uid, current)
            seconds[uid] = nil
        }
        var current = seconds[uid] ?? Second(second: second)
        defer { seconds[uid] = current }
        if current.recorded < perSecond {
            current.recorded += 1
            return true
        }
        suppressed += 1
        switch attempt {
        case .set: current.sets[errno, default: 0] += 1
        case .capContID: current.capContIDs[errno, default: 0] += 1
        }
        return false
    }

    /// The summaries of every second that ended before the second of `now`, oldest
    /// first (uids in increasing order within a second); each is returned once.
    public mutating func summaries(now: UInt64) -> [ContainerRecord] {
        let second = now / 1000
        for (uid, s) in seconds.sorted(by: { ($0.value.second, $0.key) < ($1.value.second, $1.key) })
        where s.second != second {
            summarize(uid: uid, s)
            seconds[uid] = nil
        }
        defer { ended.removeAll() }
        return ended
    }

    private mutating func summarize(uid: UInt32, _ s: Second) {
        if let r = Self.summary(uid: uid, s.sets, op: "set-suppressed", type: .containerOp) { ended.append(r) }
        if let r = Self.summary(uid: uid, s.capContIDs, op: "capcontid-suppressed", type: .setCapContID) {
            ended.append(r)
        }
    }

    private static func summary(uid: UInt32, _ counts: [ContainerErrno: Int], op: String, type: AuditRecordType)
        -> ContainerRecord?
    {
        let count = counts.values.reduce(0, +)
        guard count > 0 else { return nil }
        let errno = ContainerErrno.allCases.max { (counts[$0] ?? 0, $1.rawValue) < (counts[$1] ?? 0, $0.rawValue) }!
        var text = RecordText()
        text.field("op", raw: op)
        text.field("uid", uid)
        text.field("count", count)
        text.field("errno", raw: errno.name)
        text.field("res", 0)
        return text.record(type)
    }
}
