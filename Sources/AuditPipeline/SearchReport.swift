// `contid report`: per container, what its events were (records by type, top
// executables, failed syscalls by errno), its registrations and refusals with
// their errnos, and its losses (CONTAINER_LOST); over all selected events,
// aureport's summary counts. Counted from the borrowed bytes of each event:
// names are copied once, when first seen.

import AuditCodec

public final class SearchReport: SearchSink {
    public struct Container {
        public var events = 0
        public var recordsByType: [UInt16: Int] = [:]
        public var executables: [UInt64: (name: [UInt8], count: Int)] = [:]
        public var failedSyscalls: [Int: Int] = [:]   // errno -> count
        public var registrations = 0
        public var refusals: [String: Int] = [:]       // errno name -> count
        public var lost = 0
    }

    /// aureport --summary's counts that a trail holds (distinct values by hash).
    public struct Summary {
        public var events = 0
        public var first: AuditTime?
        public var last: AuditTime?
        public var configChanges = 0
        public var logins = 0, failedLogins = 0
        public var authentications = 0, failedAuthentications = 0
        public var avcs = 0
        public var failedSyscalls = 0
        public var anomalies = 0
        var users = Set<UInt64>(), terminals = Set<UInt64>(), executables = Set<UInt64>(), commands = Set<UInt64>()
        var files = Set<UInt64>(), keys = Set<UInt64>(), pids = Set<UInt64>()
        public var userCount: Int { users.count }
        public var terminalCount: Int { terminals.count }
        public var executableCount: Int { executables.count }
        public var commandCount: Int { commands.count }
        public var fileCount: Int { files.count }
        public var keyCount: Int { keys.count }
        public var pidCount: Int { pids.count }
    }

    public private(set) var containers: [String: Container] = [:]
    public private(set) var summary = Summary()
    /// `--contid`: only this container (with `nested`, it and the containers in it).
    let only: [UInt8]?
    let nested: Bool

    public init(contid: [UInt8]?, nested: Bool) {
        only = contid
        self.nested = nested
    }

    public func event(_ records: UnsafeBufferPointer<SearchRecord>, node: UnsafeRawBufferPointer?, serial: UInt32, time: AuditTime) {
        // The event's container: its CONTAINER_ID chain, else the one our own records name.
        var chain: UnsafeRawBufferPointer?
        var own: UnsafeRawBufferPointer?
        for r in records where r.type.isContidRange {
            let b = Self.body(r)
            if r.type == .containerID { chain = value("contid", b); break }
            if r.type == .containerOp { own = value("contid", b).flatMap { $0.elementsEqual("-1".utf8) ? nil : $0 } ?? value("old-contid", b) }
            if r.type == .containerInfo || r.type == .containerLost { own = value("contid", b) }
        }
        let ids = chain ?? own
        if let only {
            guard let ids, Self.chain(ids, holds: only, nested: nested) else { return }
        }
        let name = ids.map { Self.innermost($0) } ?? "host"
        var c = containers.removeValue(forKey: name) ?? Container()  // unique: mutated without a copy
        c.events += 1
        summary.events += 1
        if summary.first == nil || time < summary.first! { summary.first = time }
        if summary.last == nil || summary.last! < time { summary.last = time }
        for r in records {
            c.recordsByType[r.type.rawValue, default: 0] += 1
            let b: UnsafeRawBufferPointer
            switch r.type {
            case .syscall, .path, .configChange, .userLogin, .userAuth, .containerOp, .containerLost: b = Self.body(r)
            default: b = UnsafeRawBufferPointer(start: nil, count: 0)
            }
            switch r.type {
            case .syscall:
                let failed = value("success", b).map { $0.elementsEqual("no".utf8) } ?? false
                if failed {
                    summary.failedSyscalls += 1
                    if let e = value("exit", b).flatMap({ FieldScanner.decimal($0) }), e < 0 { c.failedSyscalls[Int(-e), default: 0] += 1 }
                }
                if let exe = value("exe", b) {
                    let h = Self.hash(exe)
                    summary.executables.insert(h)
                    if let old = c.executables[h] { c.executables[h] = (old.name, old.count + 1) } else { c.executables[h] = (Array(exe), 1) }
                }
                if let v = value("comm", b) { summary.commands.insert(Self.hash(v)) }
                if let v = value("auid", b) { summary.users.insert(Self.hash(v)) }
                if let v = value("tty", b) { summary.terminals.insert(Self.hash(v)) }
                if let v = value("pid", b) { summary.pids.insert(Self.hash(v)) }
                if let v = value("key", b), !v.elementsEqual("(null)".utf8) { summary.keys.insert(Self.hash(v)) }
            case .path:
                if let v = value("name", b) { summary.files.insert(Self.hash(v)) }
            case .configChange:
                summary.configChanges += 1
                if let v = value("key", b), !v.elementsEqual("(null)".utf8) { summary.keys.insert(Self.hash(v)) }
            case .userLogin:
                summary.logins += 1
                if let v = value("res", b), v.starts(with: "failed".utf8) { summary.failedLogins += 1 }
            case .userAuth:
                summary.authentications += 1
                if let v = value("res", b), v.starts(with: "failed".utf8) { summary.failedAuthentications += 1 }
            case .avc, .userAVC:
                summary.avcs += 1
            case .containerOp:
                let op = value("op", b)
                guard op.map({ $0.elementsEqual("set".utf8) || $0.starts(with: "set-suppressed".utf8) }) == true else { break }
                if value("res", b).map({ $0.elementsEqual("1".utf8) }) == true {
                    c.registrations += 1
                } else {
                    let e = value("errno", b).map { String(decoding: $0, as: UTF8.self) } ?? "?"
                    let n = value("count", b).flatMap { FieldScanner.decimal($0) }.map(Int.init) ?? 1
                    c.refusals[e, default: 0] += n
                }
            case .containerLost:
                if let n = value("lost", b).flatMap({ FieldScanner.decimal($0) }) { c.lost += Int(n) }
            default:
                if (2100...2199).contains(r.type.rawValue) || (1700...1799).contains(r.type.rawValue) { summary.anomalies += 1 }
            }
        }
        containers[name] = c
    }

    /// A record's body (after the stamp, before any ENRICHED part).
    static func body(_ r: SearchRecord) -> UnsafeRawBufferPointer {
        guard case .success(let h) = RecordScanner.scan(r.line) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(rebasing: r.line[Int(h.bodyStart)..<Int(h.bodyEnd)])
    }

    func value(_ name: StaticString, _ body: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        FieldScanner.valueRange(of: name, in: body).map { UnsafeRawBufferPointer(rebasing: body[$0]) }
    }

    static func hash(_ b: UnsafeRawBufferPointer) -> UInt64 { LogIndex.fnv(b) }

    static func innermost(_ chain: UnsafeRawBufferPointer) -> String {
        let end = chain.firstIndex(of: UInt8(ascii: ",")) ?? chain.count
        return String(decoding: chain[0..<end], as: UTF8.self)
    }

    static func chain(_ v: UnsafeRawBufferPointer, holds id: [UInt8], nested: Bool) -> Bool {
        for (i, element) in v.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).enumerated() {
            let isParent = element.first == UInt8(ascii: "^")
            if isParent && !nested { continue }
            _ = i
            if element.dropFirst(isParent ? 1 : 0).elementsEqual(id) { return true }
        }
        return false
    }

    // MARK: printing

    public enum Format: String, Sendable, CaseIterable { case text, json, csv }

    /// The containers in order: by ID (numbers numerically), the host's events last.
    var orderedNames: [String] {
        containers.keys.sorted { a, b in
            if a == "host" { return false }
            if b == "host" { return true }
            if let x = UInt64(a), let y = UInt64(b) { return x < y }
            return a < b
        }
    }

    public func render(_ format: Format, top: Int = 5) -> String {
        switch format {
        case .text: return text(top: top)
        case .json: return json(top: top)
        case .csv: return csv(top: top)
        }
    }

    func topExecutables(_ c: Container, _ n: Int) -> [(String, Int)] {
        c.executables.values.sorted { $0.count != $1.count ? $0.count > $1.count : $0.name.lexicographicallyPrecedes($1.name) }
            .prefix(n).map { (Self.unquoted($0.name), $0.count) }
    }

    static func unquoted(_ v: [UInt8]) -> String {
        if v.count >= 2, v.first == UInt8(ascii: "\""), v.last == UInt8(ascii: "\"") { return String(decoding: v.dropFirst().dropLast(), as: UTF8.self) }
        if let d = AuditText.unhex(v), v != Array("(null)".utf8) { return String(decoding: d, as: UTF8.self) }
        return String(decoding: v, as: UTF8.self)
    }

    static func errnoName(_ n: Int) -> String { ErrnoName.name(n) ?? "E\(n)" }

    var summaryRows: [(String, String)] {
        let s = summary
        var range = "none"
        if let f = s.first, let l = s.last { range = "\(SearchPrinter.localTime(f)) - \(SearchPrinter.localTime(l))" }
        return [
            ("Range of time in logs", range),
            ("Number of changes in configuration", "\(s.configChanges)"),
            ("Number of logins", "\(s.logins)"), ("Number of failed logins", "\(s.failedLogins)"),
            ("Number of authentications", "\(s.authentications)"), ("Number of failed authentications", "\(s.failedAuthentications)"),
            ("Number of users", "\(s.userCount)"), ("Number of terminals", "\(s.terminalCount)"),
            ("Number of executables", "\(s.executableCount)"), ("Number of commands", "\(s.commandCount)"),
            ("Number of files", "\(s.fileCount)"), ("Number of AVC's", "\(s.avcs)"),
            ("Number of failed syscalls", "\(s.failedSyscalls)"), ("Number of anomaly events", "\(s.anomalies)"),
            ("Number of keys", "\(s.keyCount)"), ("Number of process IDs", "\(s.pidCount)"),
            ("Number of events", "\(s.events)"),
        ]
    }

    static func table(_ headers: [String], _ rows: [[String]]) -> String {
        var widths = headers.map(\.count)
        for r in rows { for (i, v) in r.enumerated() { widths[i] = max(widths[i], v.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, v in
                let pad = String(repeating: " ", count: widths[i] - v.count)
                return i == 0 ? v + pad : pad + v
            }.joined(separator: "  ")
        }
        var out = "  " + line(headers) + "\n  " + widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
        for r in rows { out += "  " + line(r) + "\n" }
        return out
    }

    func text(top: Int) -> String {
        var out = "Summary\n=======\n"
        let w = summaryRows.map(\.0.count).max() ?? 0
        for (k, v) in summaryRows { out += k + ":" + String(repeating: " ", count: w - k.count + 1) + v + "\n" }
        for name in orderedNames {
            let c = containers[name]!
            out += "\n" + (name == "host" ? "Host (no container)" : "Container \(name)") + ": \(c.events) events"
            out += ", \(c.registrations) registrations, \(c.refusals.values.reduce(0, +)) refusals, \(c.lost) lost\n"
            let types = c.recordsByType.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            out += Self.table(["record type", "records"], types.map { [AuditRecordType(rawValue: $0.key).name, "\($0.value)"] })
            let exes = topExecutables(c, top)
            if !exes.isEmpty { out += Self.table(["executable", "events"], exes.map { [$0.0, "\($0.1)"] }) }
            if !c.failedSyscalls.isEmpty {
                out += Self.table(["failed syscall errno", "count"],
                                  c.failedSyscalls.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
                                      .map { [Self.errnoName($0.key), "\($0.value)"] })
            }
            if !c.refusals.isEmpty {
                out += Self.table(["refusal errno", "count"], c.refusals.sorted { $0.key < $1.key }.map { [$0.key, "\($0.value)"] })
            }
        }
        return out
    }

    func json(top: Int) -> String {
        func str(_ s: String) -> String { var o = ""; EventJSON.appendString(s, to: &o); return o }
        var out = "{\"summary\":{"
        out += summaryRows.map { str($0.0) + ":" + (Int($0.1) != nil ? $0.1 : str($0.1)) }.joined(separator: ",")
        out += "},\"containers\":["
        out += orderedNames.map { name -> String in
            let c = containers[name]!
            var o = "{\"contid\":" + (name == "host" ? "null" : str(name)) + ",\"events\":\(c.events)"
            o += ",\"records_by_type\":{" + c.recordsByType.sorted { $0.key < $1.key }
                .map { str(AuditRecordType(rawValue: $0.key).name) + ":\($0.value)" }.joined(separator: ",") + "}"
            o += ",\"top_executables\":[" + topExecutables(c, top).map { "{\"exe\":\(str($0.0)),\"events\":\($0.1)}" }.joined(separator: ",") + "]"
            o += ",\"failed_syscalls\":{" + c.failedSyscalls.sorted { $0.key < $1.key }
                .map { str(Self.errnoName($0.key)) + ":\($0.value)" }.joined(separator: ",") + "}"
            o += ",\"registrations\":\(c.registrations),\"refusals\":{" + c.refusals.sorted { $0.key < $1.key }
                .map { str($0.key) + ":\($0.value)" }.joined(separator: ",") + "},\"lost\":\(c.lost)}"
            return o
        }.joined(separator: ",")
        return out + "]}\n"
    }

    func csv(top: Int) -> String {
        func cell(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\"" : s
        }
        var out = "container,section,name,value\n"
        for (k, v) in summaryRows { out += ",summary,\(cell(k)),\(cell(v))\n" }
        for name in orderedNames {
            let c = containers[name]!
            let id = name == "host" ? "" : cell(name)
            out += "\(id),events,,\(c.events)\n"
            for (t, n) in c.recordsByType.sorted(by: { $0.key < $1.key }) { out += "\(id),record_type,\(AuditRecordType(rawValue: t).name),\(n)\n" }
            for (e, n) in topExecutables(c, top) { out += "\(id),executable,\(cell(e)),\(n)\n" }
            for (e, n) in c.failedSyscalls.sorted(by: { $0.key < $1.key }) { out += "\(id),failed_syscall,\(Self.errnoName(e)),\(n)\n" }
            out += "\(id),registrations,,\(c.registrations)\n"
            for (e, n) in c.refusals.sorted(by: { $0.key < $1.key }) { out += "\(id),refusal,\(e),\(n)\n" }
            out += "\(id),lost,,\(c.lost)\n"
        }
        return out
    }
}
