// A generated audit trail with its ground truth: process trees in nested containers
// as the kernel would log them under fork/exec/exit rules, with the orchestrators'
// CONTAINER_OP records, PID reuse (also right after an exit), vfork children whose
// records come before their parent's, orphans whose `ppid=` already names init, and
// subshells that never exec and fork at once, whose own first record (their clone
// record) comes after their child's records.

struct TraceGenerator {
    struct Proc {
        var pid: Int32
        var parent: Int32          // the real parent (1 once reparented)
        var container: Int?        // index into containers
        var children: Set<Int32> = []
        var comm: String
    }
    struct Container { var id: UInt64; var parent: Int?; var depth: Int }

    private(set) var lines: [String] = []
    /// serial -> the chain every event must carry ("" for none).
    private(set) var truth: [UInt32: String] = [:]
    private(set) var processesCreated = 0
    private(set) var containers: [Container] = []
    private(set) var vforkReorders = 0
    private(set) var orphans = 0
    private(set) var pidReuses = 0
    private(set) var maxDepth = 0
    /// Subshells that forked at once; their child's records precede their own first one.
    private(set) var subshells = 0
    /// Pids given to a new process right after their previous process's exit_group.
    private(set) var reusesAfterExit = 0
    /// Subshells whose creating clone record is written late too, after the grandchild's.
    private(set) var lateCreations = 0
    /// When set, a subshell's creation record also comes after its child's records: the
    /// grandchild's parent is then named by nothing before it (needs held attribution).
    let lateCreation: Bool

    private var procs: [Int32: Proc] = [:]
    private var usedPids: Set<Int32> = []
    private var serial: UInt32 = 1000
    private var timeMs: UInt64 = 1_790_000_000_000
    private var nextPid: Int32 = 1000
    private let pidLow: Int32 = 1000, pidHigh: Int32 = 3999
    private var rng: UInt64
    /// A pid freed by an exit that the next process takes at once.
    private var freed: Int32? = nil
    let orchestrator: Int32 = 500

    init(seed: UInt64, lateCreation: Bool = false) {
        rng = seed | 1
        self.lateCreation = lateCreation
        procs[1] = Proc(pid: 1, parent: 0, container: nil, comm: "init")
        procs[orchestrator] = Proc(pid: orchestrator, parent: 1, container: nil, comm: "orchestrator")
        procs[1]!.children.insert(orchestrator)
    }

    mutating func random(_ n: Int) -> Int {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
        return Int(rng % UInt64(n))
    }

    func chain(_ c: Int?) -> String {
        guard var c else { return "" }
        var parts = [String(containers[c].id)]
        while let p = containers[c].parent { parts.append("^" + String(containers[p].id)); c = p }
        return parts.joined(separator: ",")
    }

    /// Events whose chain in `got` (serial -> chain) differs from the truth, and events missing.
    func mismatches(_ got: [UInt32: String]) -> (wrong: Int, missing: Int, first: [String]) {
        var wrong = 0, missing = 0
        var first: [String] = []
        for serial in truth.keys.sorted() {
            let expected = truth[serial]!
            guard let actual = got[serial] else { missing += 1; continue }
            if actual != expected {
                wrong += 1
                if first.count < 5 { first.append("serial \(serial): expected '\(expected)', got '\(actual)'") }
            }
        }
        return (wrong, missing, first)
    }

    // MARK: emitting records

    mutating func stamp() -> String {
        timeMs += 1
        serial += 1
        return "msg=audit(\(timeMs / 1000).\(String(format: "%03d", Int(timeMs % 1000))):\(serial))"
    }

    /// One syscall event of `pid`, with the records the kernel writes for it.
    mutating func syscall(_ pid: Int32, _ number: Int, exit: Int64? = nil, a0: String = "0", key: String = "contid-track") {
        let p = procs[pid]!
        let ts = stamp()
        let result = number == 231 ? "" : " success=yes exit=\(exit ?? 0)"
        lines.append("type=SYSCALL \(ts): arch=c000003e syscall=\(number)\(result) a0=\(a0) a1=0 a2=0 a3=0 items=0 ppid=\(p.parent) pid=\(pid) auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"\(p.comm)\" exe=\"/usr/bin/\(p.comm)\" key=\"\(key)\"")
        if number == 59 {
            lines.append("type=EXECVE \(ts): argc=1 a0=\"\(p.comm)\"")
            lines.append("type=CWD \(ts): cwd=\"/\"")
            lines.append("type=PATH \(ts): item=0 name=\"/usr/bin/\(p.comm)\" inode=1 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0")
        }
        if number == 257 {
            lines.append("type=CWD \(ts): cwd=\"/\"")
            lines.append("type=PATH \(ts): item=0 name=\"/srv/watched\" inode=2 dev=fe:00 mode=0100644 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0")
        }
        lines.append("type=PROCTITLE \(ts): proctitle=\"\(p.comm)\"")
        truth[serial] = chain(p.container)
    }

    mutating func containerOp(writer: Int32, target: Int32, id: UInt64, old: String) {
        let ts = stamp()
        lines.append("type=CONTAINER_OP \(ts): op=set opid=\(target) contid=\(id) old-contid=\(old.isEmpty ? "-1" : old) pid=\(writer) uid=0 auid=1000 ses=1 comm=\"\(procs[writer]!.comm)\" exe=\"/usr/bin/\(procs[writer]!.comm)\" res=1")
        truth[serial] = ""
    }

    // MARK: process life

    mutating func allocatePid() -> Int32 {
        if let p = freed {
            freed = nil
            if procs[p] == nil {
                pidReuses += 1
                reusesAfterExit += 1
                return p
            }
        }
        while true {
            let p = nextPid
            nextPid = nextPid == pidHigh ? pidLow : nextPid + 1
            if procs[p] == nil {
                if usedPids.contains(p) { pidReuses += 1 }
                usedPids.insert(p)
                return p
            }
        }
    }

    /// `parent` forks a child that execs; returns its pid.
    @discardableResult
    mutating func spawn(_ parent: Int32, comm: String, vfork: Bool = false, orphan: Bool = false) -> Int32 {
        let child = allocatePid()
        processesCreated += 1
        procs[child] = Proc(pid: child, parent: parent, container: procs[parent]!.container, comm: comm)
        procs[parent]!.children.insert(child)
        if vfork {
            // The parent's vfork record is written when it resumes, after the child's exec.
            syscall(child, 59)
            syscall(parent, 58, exit: Int64(child))
            vforkReorders += 1
        } else if orphan {
            // The parent exits before the child's first record: the child's ppid= is 1 by then.
            syscall(parent, 56, exit: Int64(child), a0: "1200011")
            exit(parent)
            orphans += 1
            syscall(child, 59)
        } else {
            syscall(parent, 57, exit: Int64(child))
            syscall(child, 59)
        }
        return child
    }

    /// `parent` forks a subshell that never execs and forks a worker at once. The
    /// subshell's clone record is written when its clone returns, after the worker has
    /// exec'd; with `lateCreation` the parent's clone record of the subshell is late too.
    /// Returns the worker's pid.
    mutating func subshell(_ parent: Int32) -> Int32 {
        let shell = allocatePid()
        processesCreated += 1
        procs[shell] = Proc(pid: shell, parent: parent, container: procs[parent]!.container, comm: procs[parent]!.comm)
        procs[parent]!.children.insert(shell)
        let child = allocatePid()
        processesCreated += 1
        procs[child] = Proc(pid: child, parent: shell, container: procs[shell]!.container, comm: "worker")
        procs[shell]!.children.insert(child)
        subshells += 1
        if lateCreation {
            syscall(child, 59)
            syscall(shell, 57, exit: Int64(child))
            syscall(parent, 57, exit: Int64(shell))
            lateCreations += 1
        } else {
            syscall(parent, 57, exit: Int64(shell))
            syscall(child, 59)
            syscall(shell, 57, exit: Int64(child))
        }
        return child
    }

    mutating func exit(_ pid: Int32) {
        syscall(pid, 231)
        let p = procs.removeValue(forKey: pid)!
        procs[p.parent]?.children.remove(pid)
        for c in p.children {
            procs[c]?.parent = 1
            procs[1]!.children.insert(c)
        }
    }

    mutating func register(writer: Int32, target: Int32) {
        let parent = procs[writer]!.container
        let depth = parent.map { containers[$0].depth + 1 } ?? 1
        let id = UInt64(100_000 + containers.count * 7)
        let old = chain(procs[target]!.container)
        containers.append(Container(id: id, parent: parent, depth: depth))
        maxDepth = max(maxDepth, depth)
        containerOp(writer: writer, target: target, id: id, old: old)
        procs[target]!.container = containers.count - 1
    }

    // MARK: the scenario

    mutating func run(processes: Int, containers wanted: Int) {
        syscall(orchestrator, 59)
        var inits: [Int32] = []   // registered first processes, by container index
        while processesCreated < processes {
            // Sorted: a dictionary's order changes from run to run (seeded hashing), the trace must not.
            let live = procs.keys.sorted().filter { $0 != 1 && $0 != orchestrator }
            let roll = random(100)
            if containers.count < wanted, roll < 3 {
                // A new top-level container, or one nested in a container up to 3 deep.
                // A first process's pid may name another process by now (reused): any member of a container may nest.
                let nestable = inits.filter { procs[$0]?.container.map { containers[$0].depth < 3 } ?? false }
                let writer = (!nestable.isEmpty && random(2) == 0) ? nestable[random(nestable.count)] : orchestrator
                let child = spawn(writer, comm: "cinit")
                register(writer: writer, target: child)
                inits.append(child)
            } else if live.count > 400 || (roll < 30 && !live.isEmpty) {
                // Something ends; never a first process that may still nest others, while few exist.
                let candidates = live.filter { !inits.contains($0) || live.count > 400 }
                guard !candidates.isEmpty else { continue }
                let ended = candidates[random(candidates.count)]
                exit(ended)
                if random(3) == 0 { freed = ended }
            } else {
                let parents = live.isEmpty ? [orchestrator] : live
                let parent = parents[random(parents.count)]
                let kind = random(10)
                let child = kind == 2 && processesCreated + 2 <= processes
                    ? subshell(parent)
                    : spawn(parent, comm: "worker", vfork: kind == 0, orphan: kind == 1 && parent != orchestrator)
                if random(2) == 0 { syscall(child, 257, exit: 3, key: "watched") }
            }
        }
        // Everyone left touches the watched file once more, then the trail ends.
        for pid in procs.keys.sorted() where pid != 1 { syscall(pid, 257, exit: 3, key: "watched") }
    }
}
