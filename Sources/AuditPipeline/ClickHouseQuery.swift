// `contid search --clickhouse` / `report --clickhouse`: the search options as one SQL
// query over the fleet store (packaging/clickhouse/events_local.sql). Every query reads
// with FINAL: a batch sent twice is in the table twice until a merge, and must be
// seen once. Values are quoted here, never pasted: a label or key is data.

import AuditCodec
import ContainerEngine

public struct ClickHouseQuery: Sendable, Equatable {
    /// `--contid ID`: the innermost ID is ID; with `nested`, ID is anywhere in the chain
    /// (the container and every container nested inside it).
    public var contid: ContainerID?
    public var nested = false
    /// `--label k=v` (all must hold): the labels the container had when the event happened.
    public var labels: [String] = []
    /// `-m TYPE` (any of them): names or numbers; a type matches whether written by name or
    /// as `UNKNOWN[N]`.
    public var types: [String] = []
    /// `-k KEY` (any of them): a substring of the event's key, as ausearch matches keys.
    public var keys: [String] = []
    /// `-p PID` (any of them).
    public var pids: [Int32] = []
    /// `-ui UID`, `-ul AUID`.
    public var uids: [UInt32] = []
    public var auids: [UInt32] = []
    public var success: Bool?
    public var syscalls: [Int] = []
    public var exes: [String] = []
    public var comms: [String] = []
    /// `--since` (inclusive) / `--until` (exclusive), to the millisecond.
    public var since: AuditTime?
    public var until: AuditTime?
    /// `--node NAME` (any of them): the event's host.
    public var nodes: [String] = []
    /// The table: the Distributed one for the fleet, a shard's local one, or another name.
    public var table = "contid.events"

    public init() {}

    /// What the query returns.
    public enum Output: Sendable {
        /// The events' lines as contid writes them (raw), one event after another, in time order.
        case raw
        /// One JSON object per event with every column (report, json output).
        case rows
        /// The named columns, TabSeparated, in time order.
        case columns([String])
        /// One number: the events that match.
        case count
    }

    /// The WHERE clause ("1" when nothing is asked).
    public var condition: String {
        var c: [String] = []
        if let contid {
            let id = Self.quoted(contid.description)
            c.append(nested ? "has(chain, \(id))" : "contid = \(id)")
        }
        for l in labels { c.append("has(labels, \(Self.quoted(l)))") }
        if !types.isEmpty {
            var names: [String] = []
            for t in types {
                for part in t.split(separator: ",") where !part.isEmpty {
                    if let type = AuditRecordType(name: part) {
                        names.append(type.name)
                        let numeric = "UNKNOWN[\(type.rawValue)]"
                        if numeric != type.name { names.append(numeric) }
                    } else {
                        names.append(String(part))
                    }
                }
            }
            c.append("hasAny(types, [\(names.map(Self.quoted).joined(separator: ", "))])")
        }
        if !keys.isEmpty {
            c.append("(" + keys.map { "position(key, \(Self.quoted($0))) > 0" }.joined(separator: " OR ") + ")")
        }
        if !pids.isEmpty { c.append("pid IN (\(pids.map(String.init).joined(separator: ", ")))") }
        if !uids.isEmpty { c.append("uid IN (\(uids.map(String.init).joined(separator: ", ")))") }
        if !auids.isEmpty { c.append("auid IN (\(auids.map(String.init).joined(separator: ", ")))") }
        if let success { c.append("success = \(success ? 1 : 0)") }
        if !syscalls.isEmpty { c.append("syscall IN (\(syscalls.map(String.init).joined(separator: ", ")))") }
        if !exes.isEmpty { c.append("exe IN (\(exes.map(Self.quoted).joined(separator: ", ")))") }
        if !comms.isEmpty { c.append("comm IN (\(comms.map(Self.quoted).joined(separator: ", ")))") }
        if let since {
            // Seconds first, so the sorting key's time column prunes; then the milliseconds.
            c.append("time >= toDateTime(\(since.seconds)) AND (time > toDateTime(\(since.seconds)) OR ms >= \(since.milliseconds))")
        }
        if let until {
            c.append("time <= toDateTime(\(until.seconds)) AND (time < toDateTime(\(until.seconds)) OR ms < \(until.milliseconds))")
        }
        if !nodes.isEmpty { c.append("host IN (\(nodes.map(Self.quoted).joined(separator: ", ")))") }
        return c.isEmpty ? "1" : c.joined(separator: " AND ")
    }

    /// The whole statement, with its output format.
    public func sql(_ output: Output = .raw, limit: Int? = nil) -> String {
        let from = "FROM \(table) FINAL WHERE \(condition)"
        let tail = limit.map { " LIMIT \($0)" } ?? ""
        switch output {
        case .raw:
            // TabSeparatedRaw: the raw column unescaped, each event's lines then a newline.
            return "SELECT raw \(from) ORDER BY time, ms, host, serial\(tail) FORMAT TabSeparatedRaw"
        case .rows:
            return "SELECT \(ClickHouseColumns.list) \(from) ORDER BY time, ms, host, serial\(tail) FORMAT JSONEachRow"
        case .columns(let names):
            return "SELECT \(names.joined(separator: ", ")) \(from) ORDER BY time, ms, host, serial\(tail) FORMAT TabSeparated"
        case .count:
            return "SELECT count() \(from) FORMAT TabSeparated"
        }
    }

    /// A ClickHouse string literal.
    public static func quoted(_ s: String) -> String {
        var out = "'"
        for u in s.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "'": out += "\\'"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "\0": out += "\\0"
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "'"
    }
}
