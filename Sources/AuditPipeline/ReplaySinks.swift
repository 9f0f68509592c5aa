// Replay's output forms as pipeline sinks: raw lines and JSON lines, written to a
// `ReplayOutput` (standard output, or memory in tests).

import AuditCodec
import ContainerEngine

/// The events' records as contidd would have logged them (`record=N` links and
/// CONTAINER_ID records), grouped by event; written as bytes from one reused buffer.
public final class RawLinesSink: EventSink {
    private let output: ReplayOutput
    /// The output buffer and the annotation's scratch, in raw memory (no exclusivity checks per event).
    private let buffers: UnsafeMutablePointer<(out: [UInt8], scratch: [UInt8])>
    /// Bytes gathered before they are handed to the output.
    private let chunk: Int

    public init(output: ReplayOutput, chunk: Int = 1 << 18) {
        self.output = output
        self.chunk = chunk
        buffers = .allocate(capacity: 1)
        buffers.initialize(to: ([], []))
        buffers.pointee.out.reserveCapacity(chunk + 4096)
    }

    deinit {
        buffers.deinitialize(count: 1)
        buffers.deallocate()
    }

    public func accept(_ event: AuditEventView, annotation: EventAnnotation) {
        annotation.appendLines(of: event, to: &buffers.pointee.out, scratch: &buffers.pointee.scratch)
        if buffers.pointee.out.count >= chunk { flush() }
    }

    public func flush() {
        guard !buffers.pointee.out.isEmpty else { return }
        buffers.pointee.out.withUnsafeBytes { output.write(bytes: $0) }
        buffers.pointee.out.removeAll(keepingCapacity: true)
    }
}

/// One JSON object per event (SPEC §11) with the innermost container's labels (as the
/// trail's CONTAINER_INFO records gave them), from an owned copy: a cold path.
public final class JSONLinesSink: EventSink {
    private let output: ReplayOutput
    private let labels: (ContainerID) -> ContainerLabels
    public init(output: ReplayOutput, labels: @escaping (ContainerID) -> ContainerLabels = { _ in ContainerLabels() }) {
        self.output = output
        self.labels = labels
    }

    public func accept(_ event: AuditEventView, annotation: EventAnnotation) {
        let chain = annotation.chain
        let innermost = chain.flatMap { try? ContainerID(parsing: String($0.prefix { $0 != "," })) }
        output.write(EventJSON.encode(annotation.makeEvent(event), contid: chain,
                                      labels: innermost.map(labels) ?? ContainerLabels()) + "\n")
    }

    public func flush() {}
}
