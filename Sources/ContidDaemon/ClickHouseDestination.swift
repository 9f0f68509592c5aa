// A named destination of `type = clickhouse`: events go to the fleet store in
// batched inserts (ClickHouseSink: RowBinary, a spool on disk while the server is
// away, exactly once by the table's ReplacingMergeTree).
//
// An HTTP insert blocks for as long as the server takes (seconds when it is away:
// the connect timeout), and contidd's one thread must never wait on a destination.
// So the sink runs on a thread of its own: the loop thread copies each routed event
// (owned, annotated) into a bounded hand-off and returns; the worker assembles rows,
// sends a batch every second (or when it is full) and works the spool. A full
// hand-off drops and counts (protected events get the last eighth of its room).

import AuditCodec
import AuditPipeline
import ContainerEngine
import Glibc
import LinuxAudit

final class ClickHouseDestination: RouteDestination, @unchecked Sendable {
    let name: String
    private let losses: LossBook
    private let labelsOf: (ContainerID) -> ContainerLabels
    private let capacity: Int
    private let handoff: Handoff
    private var thread = pthread_t()
    private var started = false
    /// Labels last handed to the worker, per container (the loop thread's side).
    private var labelsSent: [ContainerID: ContainerLabels] = [:]

    struct Item {
        var event: AuditEvent
        /// The innermost container's labels when they changed since the last item (`k=v`).
        var labels: (String, [String])?
    }

    /// The worker's state, touched only by the worker thread (and `init`, before it starts).
    private final class Worker: @unchecked Sendable {
        let sink: ClickHouseSink
        let annotation = EventAnnotation(reserve: true)
        init(sink: ClickHouseSink) { self.sink = sink }
    }
    private let worker: Worker

    init(configuration d: DestinationConfiguration, spoolDirectory: String, nodeName: String, losses: LossBook,
         labels: @escaping (ContainerID) -> ContainerLabels) throws {
        name = d.name
        self.losses = losses
        labelsOf = labels
        capacity = d.queue
        let endpoint: ClickHouseEndpoint
        do { endpoint = try ClickHouseEndpoint(url: d.url ?? "") } catch {
            throw DaemonError.destinationUnavailable(name: d.name, reason: "\(error)")
        }
        var s = ClickHouseSinkSettings()
        s.table = d.table
        s.host = nodeName
        s.spoolDirectory = d.spoolMB > 0 ? spoolDirectory : nil
        s.spoolLimitBytes = d.spoolMB << 20
        do {
            try FileSystem.makeDirectories(spoolDirectory, mode: 0o700)
            worker = Worker(sink: try ClickHouseSink(settings: s, transport: ClickHouseHTTPTransport(endpoint: endpoint, timeout: .seconds(10))))
        } catch {
            throw DaemonError.destinationUnavailable(name: d.name, reason: "\(error)")
        }
        let name = d.name
        worker.sink.onError = { Log.warning("destination \(name): \($0)") }
        handoff = Handoff()
    }

    deinit { close() }

    func start() {
        guard !started else { return }
        started = true
        let box = Unmanaged.passRetained(self)
        pthread_create(&thread, nil, { arg in
            let me = Unmanaged<ClickHouseDestination>.fromOpaque(arg!).takeRetainedValue()
            me.run()
            return nil
        }, box.toOpaque())
    }

    var queueDepth: Int { handoff.count }
    var counters: ClickHouseSinkCounters { handoff.lockedCounters }

    func offer(_ event: AuditEventView, annotation: EventAnnotation, routed: RoutedEvent) {
        let limit = routed.isProtected ? capacity : capacity - capacity / 8
        guard handoff.count < limit else {
            losses.count(.init(destination: name, contid: routed.chain.innermost, cause: .queueFull, protected: routed.isProtected))
            return
        }
        var labels: (String, [String])?
        if let id = routed.chain.innermost {
            let now = labelsOf(id)
            if labelsSent[id] != now {
                labelsSent[id] = now
                labels = (id.description, now.map { "\($0.key)=\($0.value)" })
            }
        }
        handoff.put(Item(event: annotation.makeEvent(event), labels: labels))
    }

    private var rowsLostSeen = 0

    /// The worker sends on its own clock; per batch, rows its spool could not keep are
    /// counted as drops (`spool-full`; the sink does not know their containers).
    func flush() throws {
        let lost = handoff.lockedCounters.rowsLost
        if lost > rowsLostSeen {
            losses.count(.init(destination: name, contid: nil, cause: .spoolFull, protected: false), lost - rowsLostSeen)
            rowsLostSeen = lost
        }
    }

    /// Stops the worker after it has sent (or spooled) everything handed to it.
    func close() {
        guard started else { return }
        started = false
        handoff.finish()
        pthread_join(thread, nil)
    }

    /// Containers that ended: their labels need not be remembered.
    func forget(_ id: ContainerID) { labelsSent[id] = nil }

    private func run() {
        let sink = worker.sink
        let a = worker.annotation
        var items: [Item] = []
        while true {
            let open = handoff.take(into: &items, waitMilliseconds: 1000)
            for item in items {
                if let (id, list) = item.labels { sink.labels.set(id, labels: list) }
                item.event.withView { view in
                    a.reset()
                    a.plan(view) { _ in nil }  // the chain the annotated copy carries
                    sink.accept(view, annotation: a)
                }
            }
            items.removeAll(keepingCapacity: true)
            try? sink.flush()
            handoff.publish(sink.counters)
            if !open { break }
        }
        sink.close()
        handoff.publish(sink.counters)
    }
}

/// A queue between the loop thread and one worker: a mutex and a condition variable.
final class Handoff: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var items: [ClickHouseDestination.Item] = []
    private var finished = false
    private var published = ClickHouseSinkCounters()
    var count: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return items.count
    }

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        cond.deallocate()
    }

    func put(_ item: ClickHouseDestination.Item) {
        pthread_mutex_lock(mutex)
        items.append(item)
        if items.count == 1 { pthread_cond_signal(cond) }
        pthread_mutex_unlock(mutex)
    }

    func finish() {
        pthread_mutex_lock(mutex)
        finished = true
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
    }

    /// Moves everything queued into `out`, waiting up to `waitMilliseconds` for the first;
    /// false once finished and empty.
    func take(into out: inout [ClickHouseDestination.Item], waitMilliseconds: Int) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if items.isEmpty && !finished {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            var deadline = now
            let ns = Int(now.tv_nsec) + waitMilliseconds * 1_000_000
            deadline.tv_sec += ns / 1_000_000_000
            deadline.tv_nsec = ns % 1_000_000_000
            _ = pthread_cond_timedwait(cond, mutex, &deadline)
        }
        swap(&out, &items)
        return !(finished && out.isEmpty)
    }

    func publish(_ c: ClickHouseSinkCounters) {
        pthread_mutex_lock(mutex)
        published = c
        pthread_mutex_unlock(mutex)
    }

    var lockedCounters: ClickHouseSinkCounters {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return published
    }
}
