// Routing (SPEC §7, item 3): each event goes to a set of destinations, decided
// by the route rules (first match wins; no match: host and container):
//
//   EventPipeline -> ... -> Router (an EventSink)
//        host       -> the host sinks (host log, JSON log): written in line, never dropped
//        container  -> the container logs (`container_logs = yes`) and the reader hub
//        NAME       -> a named destination from the config (remote auditd, JSON, ClickHouse)
//
// Every destination other than the host log keeps its own bounded queue: a slow
// one drops and counts into the shared `LossBook` (per destination, container and
// cause), never blocks the source or another destination. The daemon turns the
// book's reports into CONTAINER_LOST records on the host trail, at most one per
// destination and container per second while dropping.

import AuditCodec
import ContainerEngine

/// A destination a route rule may name.
public enum DestinationRef: Hashable, Sendable, CustomStringConvertible {
    /// The host trail (host log, JSON log).
    case host
    /// The event's own container's consumers: the readers entitled to it and, with
    /// `container_logs = yes`, its per-container logs.
    case container
    /// A destination named in the config file.
    case named(String)

    public init(_ name: String) {
        switch name {
        case "host": self = .host
        case "container": self = .container
        default: self = .named(name)
        }
    }

    public var description: String {
        switch self {
        case .host: "host"
        case .container: "container"
        case .named(let n): n
        }
    }
}

/// The destinations of one event: bit 0 host, bit 1 container, bit 2+i the i-th named
/// destination of the config (at most 62).
public struct DestinationSet: Hashable, Sendable, CustomStringConvertible {
    public var bits: UInt64
    public init(bits: UInt64) { self.bits = bits }

    public static let host = DestinationSet(bits: 1)
    public static let container = DestinationSet(bits: 2)
    /// No route rule matched.
    public static let `default` = DestinationSet(bits: 3)
    public static let none = DestinationSet(bits: 0)
    public static let maxNamed = 62

    public static func named(_ index: Int) -> DestinationSet {
        precondition(index >= 0 && index < maxNamed)
        return DestinationSet(bits: 1 << UInt64(index + 2))
    }

    public var includesHost: Bool { bits & 1 != 0 }
    public var includesContainer: Bool { bits & 2 != 0 }
    public func includesNamed(_ index: Int) -> Bool { bits & (1 << UInt64(index + 2)) != 0 }
    public var isEmpty: Bool { bits == 0 }
    public mutating func insert(_ other: DestinationSet) { bits |= other.bits }

    /// The set of `refs`, named ones by their index in `names`; nil (with the name) for an unknown name.
    public static func resolve(_ refs: [DestinationRef], names: [String]) -> Result<DestinationSet, UnknownDestination> {
        var set = DestinationSet.none
        for r in refs {
            switch r {
            case .host: set.insert(.host)
            case .container: set.insert(.container)
            case .named(let n):
                guard let i = names.firstIndex(of: n) else { return .failure(UnknownDestination(name: n)) }
                set.insert(.named(i))
            }
        }
        return .success(set)
    }

    public var description: String {
        var parts: [String] = []
        if includesHost { parts.append("host") }
        if includesContainer { parts.append("container") }
        for i in 0..<Self.maxNamed where includesNamed(i) { parts.append("#\(i)") }
        return parts.joined(separator: ",")
    }
}

public struct UnknownDestination: Error, Hashable, Sendable { public var name: String }

extension AuditRecordType {
    /// Records no queue limit drops from the host trail, and that a reader queue or a
    /// remote spool drops last and counts apart (SPEC §7, item 1).
    public var isProtected: Bool {
        switch self {
        case .containerOp, .setCapContID, .containerInfo, .configChange, .login, .userAuth, .avc: true
        default: (1200...1299).contains(rawValue)  // DAEMON_*
        }
    }
}

/// What the router worked out for one event, handed to every destination.
public struct RoutedEvent {
    /// The chain of the event's task (from the annotation); unset for host tasks.
    public var chain: ContainerChain
    /// The event holds a protected record.
    public var isProtected: Bool
    public var destinations: DestinationSet
    /// contid's own record (CONTAINER_LOST and the like): host trail only.
    public var isOwn: Bool

    public init(chain: ContainerChain, isProtected: Bool, destinations: DestinationSet, isOwn: Bool = false) {
        self.chain = chain
        self.isProtected = isProtected
        self.destinations = destinations
        self.isOwn = isOwn
    }
}

/// Why events were dropped.
public enum LossCause: String, Sendable, CaseIterable {
    /// A destination's queue was full.
    case queueFull = "queue-full"
    /// A remote destination's spool on disk was full.
    case spoolFull = "spool-full"
    /// A write failed (disk full, file gone).
    case writeError = "write-error"
}

/// A destination other than the host sinks, with its own bounded queue.
public protocol RouteDestination: AnyObject {
    /// How CONTAINER_LOST's `dest=` and the metrics name it (`container-log`, a config name).
    var name: String { get }
    /// One event (borrowed for the call). A destination that cannot take it counts the
    /// loss in the router's `LossBook` itself (it knows its sub-destinations: one reader).
    func offer(_ event: AuditEventView, annotation: EventAnnotation, routed: RoutedEvent)
    /// Events lost before the pipeline (sequence gaps).
    func eventsLost(_ count: Int)
    /// After each batch: write or send what is queued, as far as it goes without blocking.
    func flush() throws
    func close()
    /// Events waiting in its queue (or spool) now.
    var queueDepth: Int { get }
}

extension RouteDestination {
    public func eventsLost(_ count: Int) {}
    public func close() { try? flush() }
}

/// Decides an event's destinations (the route rules); nil when no rule matched.
public protocol RouteDecider: AnyObject {
    func destinations(_ event: AuditEventView, chain: ContainerChain) -> DestinationSet?
}

/// Drops counted per destination, container and cause; reports as CONTAINER_LOST
/// record bodies at most once a second per destination and container.
public final class LossBook {
    public struct Key: Hashable, Sendable {
        public var destination: String
        public var contid: ContainerID?
        public var cause: LossCause
        /// Protected records are counted apart (`reason=queue-full-protected`).
        public var protected: Bool
        public init(destination: String, contid: ContainerID?, cause: LossCause, protected: Bool) {
            self.destination = destination
            self.contid = contid
            self.cause = cause
            self.protected = protected
        }
        public var reason: String { protected ? cause.rawValue + "-protected" : cause.rawValue }
    }

    /// Every drop since start, by key (metrics).
    public private(set) var totals: [Key: Int] = [:]
    /// Not yet reported in a CONTAINER_LOST record.
    private var unreported: [Key: Int] = [:]
    /// Last report (ms) per destination and container.
    private var lastReport: [String: UInt64] = [:]
    public private(set) var total = 0

    public init() {}

    public func count(_ key: Key, _ n: Int = 1) {
        guard n > 0 else { return }
        totals[key, default: 0] += n
        unreported[key, default: 0] += n
        total += n
    }

    /// Drops of one destination (all containers and causes).
    public func dropped(destination: String) -> Int {
        totals.reduce(0) { $1.key.destination == destination ? $0 + $1.value : $0 }
    }

    /// CONTAINER_LOST bodies due now: one per key whose destination and container were
    /// not reported in the last second (`all`: every count not reported yet, at exit).
    public func takeReports(nowMilliseconds now: UInt64, all: Bool = false) -> [ContainerRecord] {
        guard !unreported.isEmpty else { return [] }
        var out: [ContainerRecord] = []
        var reportedNow: Set<String> = []
        for (key, n) in unreported.sorted(by: { ($0.key.destination, $0.key.reason) < ($1.key.destination, $1.key.reason) }) {
            let slot = key.destination + "/" + (key.contid?.description ?? "-1")
            if !all, !reportedNow.contains(slot), let last = lastReport[slot], now &- last < 1000 { continue }
            reportedNow.insert(slot)
            lastReport[slot] = now
            unreported[key] = nil
            out.append(Self.record(destination: key.destination, contid: key.contid, lost: n, reason: key.reason))
        }
        return out
    }

    /// `dest="reader:812" contid=123456 lost=1200 reason=queue-full`
    public static func record(destination: String, contid: ContainerID?, lost: Int, reason: String) -> ContainerRecord {
        ContainerRecord(type: .containerLost,
                        body: "dest=\(AuditText.untrusted(bytes: Array(destination.utf8))) contid=\(contid?.description ?? "-1") lost=\(lost) reason=\(reason)")
    }
}

/// The routing sink: decides each event's set and hands it to the destinations in it.
public final class Router: EventSink {
    /// Written in line for events routed to `host` (the host log never drops).
    public let host: [EventSink]
    /// The per-container logs (nil unless `container_logs = yes`).
    public let containerLogs: RouteDestination?
    /// The reader hub: offered every event routed to `host` or `container` (readers
    /// asking for all follow the host trail; the others, their container's).
    public let readers: RouteDestination?
    /// The config's named destinations, by index (the bits of `DestinationSet`).
    public let named: [RouteDestination]
    public let losses: LossBook
    /// The route rules; replaced between batches on SIGHUP.
    public var decider: RouteDecider?

    public private(set) var counters = Counters()
    public struct Counters: Equatable, Sendable {
        public var events = 0
        /// Events whose set left out the host trail.
        public var offHost = 0
        /// Events that went nowhere (an empty set).
        public var nowhere = 0
        public init() {}
    }

    private var lastChainBytes: [UInt8] = []
    private var lastChain = ContainerChain.unset

    public init(host: [EventSink], containerLogs: RouteDestination? = nil, readers: RouteDestination? = nil,
                named: [RouteDestination] = [], losses: LossBook = LossBook(), decider: RouteDecider? = nil) {
        precondition(named.count <= DestinationSet.maxNamed)
        self.host = host
        self.containerLogs = containerLogs
        self.readers = readers
        self.named = named
        self.losses = losses
        self.decider = decider
    }

    /// Nothing but the host sinks: the router costs one branch.
    private var hostOnly: Bool { containerLogs == nil && readers == nil && named.isEmpty && decider == nil }

    public func accept(_ event: AuditEventView, annotation: EventAnnotation) throws {
        counters.events &+= 1
        if hostOnly {
            try writeHost(event, annotation)
            return
        }
        let own = event.recordCount > 0 && event.header(0).type.isContidOwnRecord
        let chain = chainOf(annotation)
        var set = own ? DestinationSet.host : (decider?.destinations(event, chain: chain) ?? .default)
        if set.isEmpty { counters.nowhere &+= 1; return }
        var protected = false
        for i in 0..<event.recordCount where event.header(i).type.isProtected { protected = true; break }
        // Protected records always reach the host trail (SPEC §7, item 1).
        if protected { set.insert(.host) }
        let routed = RoutedEvent(chain: chain, isProtected: protected, destinations: set, isOwn: own)
        var firstError: Error?
        if set.includesHost {
            do { try writeHost(event, annotation) } catch { firstError = error }
        } else {
            counters.offHost &+= 1
        }
        if set.includesContainer, !chain.isUnset { containerLogs?.offer(event, annotation: annotation, routed: routed) }
        if let readers, set.includesHost || set.includesContainer { readers.offer(event, annotation: annotation, routed: routed) }
        if !named.isEmpty, set.bits >> 2 != 0 {
            for (i, d) in named.enumerated() where set.includesNamed(i) { d.offer(event, annotation: annotation, routed: routed) }
        }
        if let firstError { throw firstError }
    }

    @inline(__always)
    private func writeHost(_ event: AuditEventView, _ annotation: EventAnnotation) throws {
        var firstError: Error?
        for s in host {
            do { try s.accept(event, annotation: annotation) } catch { if firstError == nil { firstError = error } }
        }
        if let firstError { throw firstError }
    }

    /// The annotation's chain, parsed (the last one is kept: events come in runs).
    private func chainOf(_ annotation: EventAnnotation) -> ContainerChain {
        annotation.withChain { bytes in
            guard let bytes else { return .unset }
            if bytes.elementsEqual(lastChainBytes) { return lastChain }
            lastChainBytes = Array(bytes)
            lastChain = (try? ContainerChain(parsing: String(decoding: bytes, as: UTF8.self))) ?? .unset
            return lastChain
        }
    }

    public func eventsLost(_ count: Int) {
        for s in host { s.eventsLost(count) }
        containerLogs?.eventsLost(count)
        readers?.eventsLost(count)
        for d in named { d.eventsLost(count) }
    }

    public func flush() throws {
        var first: Error?
        for s in host { do { try s.flush() } catch { if first == nil { first = error } } }
        for d in allDestinations { do { try d.flush() } catch { if first == nil { first = error } } }
        if let first { throw first }
    }

    public func close() {
        for s in host { s.close() }
        for d in allDestinations { d.close() }
    }

    public var allDestinations: [RouteDestination] {
        [containerLogs, readers].compactMap { $0 } + named
    }
}
