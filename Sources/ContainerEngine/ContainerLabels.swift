// A container's labels (SPEC §6, §9): what its orchestrator said about it at
// registration (runtime, id, bundle, name, image, pod, and its own k=v pairs),
// kept with the container object and recorded in CONTAINER_INFO.

/// One label, `key=value`.
public struct ContainerLabel: Hashable, Sendable {
    public var key: String
    public var value: String
    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

/// The labels of one registration: CONTAINER_INFO's own fields first (runtime, id,
/// name, image, pod), then the others in the order given. Keys are unique and
/// non-empty; neither keys nor values hold `,` or `=`, so `k=v,k=v` (the wire
/// form and `labels=` of CONTAINER_INFO) is unambiguous.
public struct ContainerLabels: Hashable, Sendable, Sequence, CustomStringConvertible {
    public private(set) var labels: [ContainerLabel] = []

    /// The most a registration may carry, measured as `k=v,k=v` (SPEC §6: E2BIG beyond).
    public static let maxBytes = 4096

    /// The keys CONTAINER_INFO names in fields of their own, in its field order
    /// (`bundle` and `pod-uid` are well-known too: they go into `labels=`).
    public static let infoFields = ["runtime", "id", "name", "image", "pod"]

    public init() {}

    /// Validates `pairs`: EINVAL for an empty key, a `,` or `=` in a key or value,
    /// a key given twice; E2BIG when `k=v,k=v` exceeds 4 KiB.
    public init(validating pairs: [(String, String)]) throws(ContainerFailure) {
        var seen = Set<String>()
        for (key, value) in pairs {
            guard !key.isEmpty else { throw ContainerFailure(.EINVAL, "label with an empty key (=\(value.prefix(40)))") }
            for (what, text) in [("key", key), ("value", value)] {
                if let bad = text.utf8.first(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "=") }) {
                    throw ContainerFailure(
                        .EINVAL,
                        "label \(what) \"\(Self.printable(text.prefix(64)))\" holds '\(Character(Unicode.Scalar(bad)))'; label keys and values may not contain ',' or '='")
                }
            }
            guard seen.insert(key).inserted else {
                throw ContainerFailure(.EINVAL, "label key \"\(Self.printable(key.prefix(64)))\" given twice")
            }
            labels.append(ContainerLabel(key, value))
        }
        // One order for the same labels however they were given: CONTAINER_INFO's fields
        // first, in its order, then the others as given.
        let info = Self.infoFields.compactMap { k in labels.first { $0.key == k } }
        labels = info + labels.filter { !Self.infoFields.contains($0.key) }
        let size = encodedByteCount
        guard size <= Self.maxBytes else {
            throw ContainerFailure(.E2BIG, "labels of \(size) bytes (as k=v,k=v); at most \(Self.maxBytes)")
        }
    }

    /// Parses the wire form `k=v,k=v` (empty: no labels) and validates it like `init(validating:)`.
    public init(parsing text: String) throws(ContainerFailure) {
        guard !text.isEmpty else {
            self.init()
            return
        }
        var pairs: [(String, String)] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let eq = item.firstIndex(of: "=") else {
                throw ContainerFailure(.EINVAL, "label \"\(Self.printable(item.prefix(64)))\" is not key=value")
            }
            let value = item[item.index(after: eq)...]
            if value.contains("=") {
                throw ContainerFailure(
                    .EINVAL, "label \"\(Self.printable(item.prefix(64)))\" holds a second '='; label keys and values may not contain ',' or '='")
            }
            pairs.append((String(item[..<eq]), String(value)))
        }
        try self.init(validating: pairs)
    }

    public var isEmpty: Bool { labels.isEmpty }
    public var count: Int { labels.count }
    public func makeIterator() -> IndexingIterator<[ContainerLabel]> { labels.makeIterator() }

    public subscript(key: String) -> String? { labels.first { $0.key == key }?.value }

    /// `k=v,k=v`, the wire form.
    public var encoded: String { labels.map { "\($0.key)=\($0.value)" }.joined(separator: ",") }
    public var description: String { encoded }

    private var encodedByteCount: Int {
        labels.reduce(Swift.max(0, labels.count - 1)) { $0 + $1.key.utf8.count + 1 + $1.value.utf8.count }
    }

    /// The labels that go into CONTAINER_INFO's `labels=` (all but the info fields).
    public var others: [ContainerLabel] { labels.filter { !Self.infoFields.contains($0.key) } }

    /// Control bytes shown as `?` in messages meant for a terminal.
    static func printable(_ s: Substring) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : $0 }))
    }
    static func printable(_ s: String) -> String { printable(Substring(s)) }
}
