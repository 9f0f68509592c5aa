import AuditCodec
import ContainerEngine

/// A process tree for tests: forks with increasing start times, writers with
/// the subject fields of the SPEC's examples.
final class TestHost {
    let registry = ContainerRegistry()
    private var clock: UInt64 = 100
    private(set) var keys: [Int32: ProcessKey] = [:]

    init(namespaces: NamespaceSet? = nil) {
        keys[1] = ProcessKey(pid: 1, start: 1)
        registry.apply(.discovered(keys[1]!, parent: 0, namespaces: namespaces))
    }

    /// `parent` forks `child`; returns the child's identity.
    @discardableResult
    func fork(_ parent: Int32, _ child: Int32, cloneFlags: CloneFlags = [], namespaces: NamespaceSet? = nil)
        -> ProcessKey
    {
        clock += 1
        let key = ProcessKey(pid: child, start: clock)
        keys[child] = key
        registry.apply(.created(parent: parent, child: key, cloneFlags: cloneFlags, namespaces: namespaces))
        return key
    }

    func exit(_ pid: Int32) {
        registry.apply(.exited(keys[pid]!))
        keys[pid] = nil
    }

    func key(_ pid: Int32) -> ProcessKey { keys[pid]! }

    func writer(
        _ pid: Int32, auditControl: Bool = true, comm: String = "runc", exe: String = "/usr/bin/runc",
        excludingChild: Int32? = nil
    ) -> Writer {
        Writer(
            process: key(pid), hasAuditControl: auditControl, uid: 0, auid: 1000, ses: 3, comm: comm, exe: exe,
            excludingChild: excludingChild)
    }

    /// Registers and returns the errno (nil on success).
    @discardableResult
    func set(_ target: Int32, _ id: ContainerID?, by writer: Writer) -> ContainerErrno? {
        let targetKey = keys[target] ?? ProcessKey(pid: target, start: 0)
        do {
            try registry.register(writer: writer, target: targetKey, id: id)
            return nil
        } catch {
            return error.errno
        }
    }

    func bodies() -> [String] { registry.takeRecords().map(\.description) }

    func annotation(_ pid: Int32, record: Int = 1) -> String? {
        var out: [UInt8] = []
        guard registry.appendAnnotation(record: record, pid: pid, to: &out) else { return nil }
        return String(decoding: out, as: UTF8.self)
    }
}
