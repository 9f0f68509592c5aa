import Glibc
import LinuxAudit

/// contidd's one thread: one poll(2) over every part's descriptors, each part served
/// in the order it was added, and housekeeping when the stream is idle or at least
/// every `housekeepingMilliseconds` under load. Nothing here knows what a part does.
final class EventLoop {
    private struct Part {
        var register: (inout PollSet) -> Void
        /// Serves what poll reported; true when the part read audit records.
        var service: (PollSet) -> Bool
    }

    private let clock: TimeSource
    private let pollTimeoutMilliseconds: Int32
    private let housekeepingMilliseconds: UInt64
    private var parts: [Part] = []
    private var set = PollSet()
    /// Runs with `idle` true when no part read records this round.
    var housekeeping: (_ idle: Bool) -> Void = { _ in }
    /// Runs at the end of every round (the host log's flush).
    var afterRound: () -> Void = {}

    init(clock: TimeSource, pollTimeoutMilliseconds: Int32 = 100, housekeepingMilliseconds: UInt64 = 100) {
        self.clock = clock
        self.pollTimeoutMilliseconds = pollTimeoutMilliseconds
        self.housekeepingMilliseconds = housekeepingMilliseconds
    }

    /// A part with any number of descriptors.
    func add(register: @escaping (inout PollSet) -> Void, service: @escaping (PollSet) -> Bool) {
        parts.append(Part(register: register, service: service))
    }

    /// A part with one descriptor (asked again each round; negative: not polled).
    func add(descriptor: @escaping () -> Int32, onReady: @escaping () -> Bool) {
        var index = -1
        add(register: { set in index = set.add(descriptor(), events: Int16(POLLIN)) },
            service: { set in set.revents(index) != 0 ? onReady() : false })
    }

    /// Runs rounds until `stop()` is true.
    func run(until stop: () -> Bool) {
        var lastHousekeeping: UInt64 = 0
        while !stop() {
            round(lastHousekeeping: &lastHousekeeping)
        }
    }

    /// One round: poll, serve, maybe housekeeping.
    func round(lastHousekeeping: inout UInt64) {
        set.removeAll()
        for p in parts { p.register(&set) }
        let ready: Int
        do { ready = try set.wait(timeoutMilliseconds: pollTimeoutMilliseconds) } catch {
            Log.error("\(error)")
            Pause.sleep(milliseconds: Int(pollTimeoutMilliseconds))
            ready = 0
        }
        var busy = false
        if ready > 0 {
            for p in parts where p.service(set) { busy = true }
        }
        let now = clock.monotonicMilliseconds
        if !busy || now - lastHousekeeping >= housekeepingMilliseconds {
            lastHousekeeping = now
            housekeeping(!busy)
        }
        afterRound()
        if busy && coalesceMicroseconds > 0 { Pause.sleep(microseconds: coalesceMicroseconds) }
    }

    /// After a round that read records, the loop waits this long before polling again, so
    /// that the next round finds a batch rather than one record: fewer wake-ups and system
    /// calls per record under load (contidd's CPU per spawned process -10% here), while the
    /// kernel's backlog and the sockets' buffers hold far more than 2 ms of a fork storm.
    var coalesceMicroseconds = 2000
}
