// Decoders for the payloads that span or pack several values: EXECVE arguments
// (split over records with aN_len / aN[k]), PROCTITLE (NUL-separated argv in
// hex) and SOCKADDR (a struct sockaddr in hex).

public enum ExecveArguments {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case missingArgc
        case missingArgument(Int)
        case badLength(Int, expected: Int, got: Int)
        public var description: String {
            switch self {
            case .missingArgc: return "EXECVE without argc="
            case .missingArgument(let i): return "EXECVE argument a\(i) missing"
            case .badLength(let i, let e, let g): return "EXECVE argument a\(i): a\(i)_len=\(e) but \(g) encoded characters"
            }
        }
    }

    /// The argument vector of an event's EXECVE records, in record order.
    public static func decode(_ records: [AuditRecord]) throws(Failure) -> [[UInt8]] {
        var argc: Int? = nil
        var whole: [Int: AuditField] = [:]
        var lengths: [Int: Int] = [:]
        var chunks: [Int: [(Int, String)]] = [:]
        for r in records where r.type == .execve {
            for f in r.fields where f.form != .word {
                if f.name == "argc" { argc = Int(f.rawValue); continue }
                guard f.name.first == "a" else { continue }
                let rest = f.name.dropFirst()
                if let br = rest.firstIndex(of: "["), rest.last == "]",
                   let i = Int(rest[..<br]), let k = Int(rest[rest.index(after: br)..<rest.index(before: rest.endIndex)]) {
                    chunks[i, default: []].append((k, f.rawValue))
                } else if rest.hasSuffix("_len"), let i = Int(rest.dropLast(4)) {
                    lengths[i] = Int(f.rawValue)
                } else if let i = Int(rest) {
                    whole[i] = f
                }
            }
        }
        guard let argc else { throw .missingArgc }
        var out: [[UInt8]] = []
        out.reserveCapacity(argc)
        for i in 0..<argc {
            if let f = whole[i] {
                out.append(f.decodedBytes ?? [])
            } else if let parts = chunks[i] {
                // Chunks of a long argument are always hex, in chunk order.
                let hex = parts.sorted { $0.0 < $1.0 }.map(\.1).joined()
                if let len = lengths[i], len != hex.utf8.count { throw .badLength(i, expected: len, got: hex.utf8.count) }
                out.append(AuditText.unhex(Array(hex.utf8)) ?? Array(hex.utf8))
            } else {
                throw .missingArgument(i)
            }
        }
        return out
    }
}

public enum Proctitle {
    /// The NUL-separated command line of a PROCTITLE record (hex or quoted).
    public static func arguments(_ record: AuditRecord) -> [String]? {
        guard let f = record.field("proctitle"), let bytes = f.decodedBytes else { return nil }
        return bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// A decoded `saddr=` (struct sockaddr, host byte order except ports/addresses).
public enum SocketAddress: Equatable, Sendable, CustomStringConvertible {
    case inet(address: String, port: UInt16)
    case inet6(address: String, port: UInt16)
    case unix(path: String)
    case netlink(pid: UInt32, groups: UInt32)
    case other(family: UInt16)

    public init?(hex: String) {
        guard let b = AuditText.unhex(Array(hex.utf8)), b.count >= 2 else { return nil }
        let family = UInt16(b[0]) | UInt16(b[1]) << 8
        switch family {
        case 2 where b.count >= 8:
            self = .inet(address: "\(b[4]).\(b[5]).\(b[6]).\(b[7])", port: UInt16(b[2]) << 8 | UInt16(b[3]))
        case 10 where b.count >= 24:
            var groups: [String] = []
            for i in stride(from: 8, to: 24, by: 2) { groups.append(String(UInt16(b[i]) << 8 | UInt16(b[i + 1]), radix: 16)) }
            self = .inet6(address: groups.joined(separator: ":"), port: UInt16(b[2]) << 8 | UInt16(b[3]))
        case 1:
            let path = b[2...]
            if path.first == 0 {
                // Abstract socket: '@' and the name.
                let name = path.dropFirst().prefix { $0 != 0 }
                self = .unix(path: "@" + String(decoding: name, as: UTF8.self))
            } else {
                self = .unix(path: String(decoding: path.prefix { $0 != 0 }, as: UTF8.self))
            }
        case 16 where b.count >= 12:
            func u32(_ o: Int) -> UInt32 { UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24 }
            self = .netlink(pid: u32(4), groups: u32(8))
        default:
            self = .other(family: family)
        }
    }

    public var description: String {
        switch self {
        case .inet(let a, let p): return "inet \(a):\(p)"
        case .inet6(let a, let p): return "inet6 [\(a)]:\(p)"
        case .unix(let path): return "local \(path)"
        case .netlink(let pid, let g): return "netlink pid=\(pid) groups=\(g)"
        case .other(let f): return "family \(f)"
        }
    }
}
