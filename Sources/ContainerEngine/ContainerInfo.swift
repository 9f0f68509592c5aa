import AuditCodec

// CONTAINER_INFO (2908, SPEC §6): a container's labels, recorded once when it is
// registered and again at the top of each new log file while it lives:
//   opid=8730 contid=123456 runtime="runc" id="4f2a..." name="web-1" image="registry/app:1.2" pod="prod/web-7d9" labels="team=payments,tier=front"
// Every string is quoted, or hex-encoded as a whole, as the kernel writes untrusted strings.

public struct ContainerInfo: Hashable, Sendable {
    /// The container's first process (the registration's target).
    public var opid: Int32
    public var id: ContainerID
    public var labels: ContainerLabels

    public init(opid: Int32, id: ContainerID, labels: ContainerLabels) {
        self.opid = opid
        self.id = id
        self.labels = labels
    }

    /// The record: the info fields present, in their order, then `labels=` when others remain.
    public var record: ContainerRecord {
        var text = RecordText()
        text.field("opid", opid)
        text.field("contid", id: id)
        for key in ContainerLabels.infoFields {
            if let value = labels[key] { text.field(name: key, untrusted: Array(value.utf8)) }
        }
        let others = labels.others
        if !others.isEmpty {
            text.field("labels", untrusted: Array(others.map { "\($0.key)=\($0.value)" }.joined(separator: ",").utf8))
        }
        return text.record(.containerInfo)
    }

    /// Reads a CONTAINER_INFO body (the text after `msg=audit(T:S): `, as contidd wrote
    /// it, or the body of the kernel's USER record carrying it). Fields other than the
    /// ones above are ignored, so a later writer may add some.
    public static func parse(body: some Collection<UInt8>) throws(ContainerInfoError) -> ContainerInfo {
        let (fields, _) = FieldTokenizer.tokenizeBytes(body)
        var opid: Int32?
        var id: ContainerID?
        var pairs: [(String, String)] = []
        func decoded(_ f: AuditField) throws(ContainerInfoError) -> String {
            switch f.form {
            case .quoted: return f.unquoted
            case .bare:
                guard let bytes = AuditText.unhex(Array(f.rawValue.utf8)) else {
                    throw ContainerInfoError("\(f.name)=\(f.rawValue.prefix(40)) is neither quoted nor hex")
                }
                return String(decoding: bytes, as: UTF8.self)
            default: throw ContainerInfoError("\(f.name)=\(f.rawValue.prefix(40)) is neither quoted nor hex")
            }
        }
        for f in fields {
            switch f.name {
            case "opid":
                guard let v = Int32(f.rawValue) else { throw ContainerInfoError("opid=\(f.rawValue.prefix(40)) is not a pid") }
                opid = v
            case "contid":
                do { id = try ContainerID(parsing: f.rawValue) } catch {
                    throw ContainerInfoError("contid=\(f.rawValue.prefix(40)): \(error.reason)")
                }
            case "labels":
                let text = try decoded(f)
                guard !text.isEmpty else { continue }
                for item in text.split(separator: ",", omittingEmptySubsequences: false) {
                    guard let eq = item.firstIndex(of: "=") else { throw ContainerInfoError("label \"\(item.prefix(40))\" is not key=value") }
                    pairs.append((String(item[..<eq]), String(item[item.index(after: eq)...])))
                }
            case let name where ContainerLabels.infoFields.contains(name):
                pairs.append((name, try decoded(f)))
            default:
                continue
            }
        }
        guard let opid else { throw ContainerInfoError("no opid field") }
        guard let id else { throw ContainerInfoError("no contid field") }
        do {
            return ContainerInfo(opid: opid, id: id, labels: try ContainerLabels(validating: pairs))
        } catch {
            throw ContainerInfoError(error.reason)
        }
    }
}

/// A CONTAINER_INFO body that does not read: what is wrong with it.
public struct ContainerInfoError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "CONTAINER_INFO: \(reason)" }
}
