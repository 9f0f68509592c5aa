import Glibc
import LinuxAudit

/// contidd's one thread: one poll(2) over every part's descriptors, each part served
/// in the order it was added, and housekeeping when the stream is idle or at least
/// every `housekeepingMilliseconds` under load. Nothing here knows what a part does.
///
/// Batching without latency: after a read that found few records, the stream part (the
/// audit source) ask for a quiet spell (`quiet(forMilliseconds:)`,
/// contidd's `batch_ms`) so that the records the kernel sends one datagram at a time are
/// read in batches. During it only the other parts are polled: a registration (an OCI
/// hook that holds up a container's start) or a signal is served at once, never after
/// a sleep.
final class EventLoop {
    private struct Part {
        var register: (inout PollSet) -> Void
        /// Serves what poll reported; true when the part read audit records.
        var service: (PollSet) -> Bool
        /// Not polled during a quiet spell.
        var stream: Bool
    }

    private let clock: TimeSource
    private let pollTimeoutMilliseconds: Int32
    private let housekeepingMilliseconds: UInt64
    private var parts: [Part] = []
    private var set = PollSet()
    /// Until then (monotonic ms) the stream parts are not polled.
    private var quietUntil: UInt64 = 0
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
    func add(stream: Bool = false, register: @escaping (inout PollSet) -> Void, service: @escaping (PollSet) -> Bool) {
        parts.append(Part(register: register, service: service, stream: stream))
    }

    /// A part with one descriptor (asked again each round; negative: not polled).
    func add(stream: Bool = false, descriptor: @escaping () -> Int32, onReady: @escaping () -> Bool) {
        var index = -1
        add(stream: stream, register: { set in index = set.add(descriptor(), events: Int16(POLLIN)) },
            service: { set in set.revents(index) != 0 ? onReady() : false })
    }

    /// The stream parts rest for `milliseconds` from now (the other parts are served meanwhile).
    func quiet(forMilliseconds milliseconds: Int) {
        guard milliseconds > 0 else { return }
        quietUntil = clock.monotonicMilliseconds + UInt64(milliseconds)
    }

    /// True during a quiet spell.
    var isQuiet: Bool { clock.monotonicMilliseconds < quietUntil }

    /// Runs rounds until `stop()` is true.
    func run(until stop: () -> Bool) {
        var lastHousekeeping: UInt64 = 0
        while !stop() {
            round(lastHousekeeping: &lastHousekeeping)
        }
    }

    /// One round: poll, serve, maybe housekeeping.
    func round(lastHousekeeping: inout UInt64) {
        let start = clock.monotonicMilliseconds
        let quiet = start < quietUntil
        set.removeAll()
        for p in parts where !(quiet && p.stream) { p.register(&set) }
        let timeout = quiet ? Int32(clamping: quietUntil - start) : pollTimeoutMilliseconds
        let ready: Int
        do { ready = try set.wait(timeoutMilliseconds: timeout) } catch {
            Log.error("\(error)")
            Pause.sleep(milliseconds: Int(timeout))
            ready = 0
        }
        var busy = false
        if ready > 0 {
            for p in parts where !(quiet && p.stream) && p.service(set) { busy = true }
        }
        let now = clock.monotonicMilliseconds
        // A quiet spell is not idleness: the stream only rests.
        if (!busy && !quiet) || now - lastHousekeeping >= housekeepingMilliseconds {
            lastHousekeeping = now
            housekeeping(!busy && !quiet)
        }
        afterRound()
    }
}
