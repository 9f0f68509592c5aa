#if os(Linux)
import Glibc

/// Where process events (fork, exit) come from: the kernel's proc connector, or, in
/// tests, events queued by hand.
public protocol ProcessEventSource: AnyObject {
    /// The descriptor to poll for events; -1 when there is none to poll.
    var pollDescriptor: Int32 { get }
    /// Hands every queued event of up to `maxDatagrams` datagrams to `body`, waiting up
    /// to `timeout` for the first (`.zero`: only what is there). `gaps > 0` in the
    /// result means events were dropped before they could be read.
    func read(timeout: Duration, maxDatagrams: Int, _ body: (ProcEvent) -> Void) throws -> NetlinkReceiveResult
    /// Subscribes again without the kernel-side event filter (kernels without filters
    /// send nothing to a filtered subscription).
    func resubscribeUnfiltered() throws
}

/// The proc connector as a `ProcessEventSource`, with its own receive buffer.
public final class ProcConnectorEvents: ProcessEventSource {
    private var connector: ProcConnector
    private let buffer = NetlinkReceiveBuffer()
    private let receiveBufferSize: Int

    public init(receiveBufferSize: Int = 32 << 20, filter: ProcEventFilter? = [.fork, .exit]) throws {
        self.receiveBufferSize = receiveBufferSize
        connector = try ProcConnector(receiveBufferSize: receiveBufferSize, filter: filter)
    }

    public var pollDescriptor: Int32 { connector.descriptor.rawValue }

    public func read(timeout: Duration, maxDatagrams: Int, _ body: (ProcEvent) -> Void) throws -> NetlinkReceiveResult {
        try connector.receive(into: buffer, timeout: timeout, maxDatagrams: maxDatagrams) { body($0) }
    }

    public func resubscribeUnfiltered() throws {
        connector.close()
        connector = try ProcConnector(receiveBufferSize: receiveBufferSize, filter: nil)
    }
}
#endif
