#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// What an OCI runtime hands a hook on standard input (runtime-spec runtime.md
// "State"), and the registration `contid oci-hook` makes of it (SPEC §9): the ID
// from the annotation org.contid.id, else derived from the container's id; the
// labels from the state and the well-known annotations.

/// The OCI state document. Only `id` and `status` are required by this reader
/// (`pid` is checked where it is needed: a hook at createRuntime must have it).
public struct OCIState: Sendable, Equatable {
    public var ociVersion: String?
    public var id: String
    public var status: String
    public var pid: Int32?
    public var bundle: String?
    public var annotations: [String: String]

    public init(id: String, status: String, pid: Int32?, bundle: String?, annotations: [String: String] = [:],
                ociVersion: String? = "1.0.2") {
        self.id = id
        self.status = status
        self.pid = pid
        self.bundle = bundle
        self.annotations = annotations
        self.ociVersion = ociVersion
    }

    /// Parses the state JSON; the error says what is missing or malformed.
    public init(parsing bytes: [UInt8]) throws(OCIStateError) {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x09 || $0 == 0x0d }) {
            throw OCIStateError("no OCI state on standard input (a runtime writes the state JSON there)")
        }
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: Data(bytes))
        } catch let DecodingError.keyNotFound(key, _) {
            throw OCIStateError("the OCI state has no \"\(key.stringValue)\"")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw OCIStateError("the OCI state's \"\(path)\" has the wrong type (\(context.debugDescription))")
        } catch {
            throw OCIStateError("the OCI state is not valid JSON: \(error)")
        }
        if let pid = document.pid, pid <= 0 || pid > Int(Int32.max) {
            throw OCIStateError("the OCI state's pid \(pid) is not a process ID")
        }
        self.init(id: document.id, status: document.status, pid: document.pid.map { Int32($0) }, bundle: document.bundle,
                  annotations: document.annotations ?? [:], ociVersion: document.ociVersion)
    }

    private struct Document: Decodable {
        var ociVersion: String?
        var id: String
        var status: String
        var pid: Int?
        var bundle: String?
        var annotations: [String: String]?
    }

    /// Annotation naming the container ID (any form `contid set` accepts).
    public static let idAnnotation = "org.contid.id"
    /// Annotations `org.contid.label.K=V` become the label K=V.
    public static let labelPrefix = "org.contid.label."

    /// The ID text to register: the annotation as written (contidd parses it and
    /// refuses a malformed one with EINVAL, as for `contid set`), else the derived ID.
    public var containerIDText: String {
        annotations[Self.idAnnotation] ?? ContainerID(runtimeContainerID: id).description
    }

    /// The registration's labels, in this order: runtime, id, bundle, name, image,
    /// pod, pod-uid, then the org.contid.label.* annotations sorted by key. Absent
    /// values are left out; `runtime` is the executable that ran the hook.
    public func labels(runtime: String?) -> [(key: String, value: String)] {
        var out: [(key: String, value: String)] = []
        func add(_ key: String, _ value: String?) {
            if let value, !value.isEmpty { out.append((key, value)) }
        }
        func first(_ keys: String...) -> String? { keys.lazy.compactMap { annotations[$0] }.first { !$0.isEmpty } }
        add("runtime", runtime)
        add("id", id)
        add("bundle", bundle)
        add("name", first("io.kubernetes.container.name", "org.contid.name"))
        add("image", first("io.kubernetes.cri.image-name", "org.opencontainers.image.ref.name"))
        let namespace = first("io.kubernetes.pod.namespace"), pod = first("io.kubernetes.pod.name")
        add("pod", pod.map { name in namespace.map { "\($0)/\(name)" } ?? name })
        add("pod-uid", first("io.kubernetes.pod.uid"))
        for key in userLabelKeys where !Self.reservedLabels.contains(key) {
            add(key, annotations[Self.labelPrefix + key])
        }
        return out
    }

    /// The labels the hook sets from the state itself: an annotation cannot replace them
    /// (whoever writes annotations is not the runtime).
    public static let reservedLabels: Set<String> = ["runtime", "id", "bundle", "name", "image", "pod", "pod-uid"]

    /// K of every org.contid.label.K annotation, sorted.
    public var userLabelKeys: [String] {
        annotations.keys.filter { $0.hasPrefix(Self.labelPrefix) && $0.count > Self.labelPrefix.count }
            .map { String($0.dropFirst(Self.labelPrefix.count)) }.sorted()
    }
}

public struct OCIStateError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Linux capabilities by the names an OCI config gives them (`CAP_SYS_ADMIN`), in bit order.
public enum OCICapabilities {
    public static let all = [
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
        "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
        "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
        "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
        "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
        "CHECKPOINT_RESTORE",
    ].map { "CAP_" + $0 }

    /// The names of the capabilities set in `mask` (a CapEff/CapBnd word of /proc/PID/status).
    public static func names(in mask: UInt64) -> [String] {
        all.enumerated().filter { mask & (1 << UInt64($0.offset)) != 0 }.map(\.element)
    }
}
