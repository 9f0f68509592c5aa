import AuditCodec
import ContainerEngine
#if canImport(Glibc)
import Glibc
#endif

// `contid-bench engine`: the annotation hot path and the memory per tracked
// process, on a registry shaped like a busy host (100,000 live processes in
// about 50 containers, some nested, each container in its own netns).

enum EngineBench {
    struct Options {
        var processes = 100_000
        var events = 20_000_000
        var containers = 50
        /// A log whose events are annotated whole (EventAnnotator), when given.
        var corpus: String? = nil
    }

    static func parse(_ args: ArraySlice<String>) -> Options? {
        var o = Options()
        var rest = args
        while let flag = rest.popFirst() {
            if flag == "--corpus" {
                guard let path = rest.popFirst() else { return nil }
                o.corpus = path
                continue
            }
            guard let value = rest.popFirst().flatMap({ Int($0) }), value > 0 else { return nil }
            switch flag {
            case "--processes": o.processes = value
            case "--events": o.events = value
            case "--containers": o.containers = value
            default: return nil
            }
        }
        return o
    }

    /// Bytes in use by malloc: glibc's mallinfo2(), `uordblks` (in use from the
    /// heap) plus `hblkhd` (in use from mmap, where large tables live). Swift's
    /// Glibc module does not import malloc.h, so it is looked up with dlsym; its
    /// 80-byte struct result comes back through the hidden pointer the x86-64
    /// SysV ABI passes in the first argument register. Elsewhere: nil.
    static func heapInUse() -> Int? {
        #if arch(x86_64) && canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallinfo2") else { return nil }
        typealias Mallinfo2 = @convention(c) (UnsafeMutableRawPointer) -> UnsafeMutableRawPointer?
        let call = unsafeBitCast(symbol, to: Mallinfo2.self)
        var fields = [Int](repeating: 0, count: 10)
        fields.withUnsafeMutableBytes { _ = call($0.baseAddress!) }
        return fields[7] + fields[4]
        #else
        return nil
        #endif
    }

    /// Resident set size from /proc/self/statm, a cross-check of the malloc figure.
    static func residentBytes() -> Int? {
        guard let f = fopen("/proc/self/statm", "r") else { return nil }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        guard fgets(&line, Int32(line.count), f) != nil else { return nil }
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let pages = text.split(separator: " ").compactMap { Int($0) }
        guard pages.count >= 2 else { return nil }
        return pages[1] * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func run(_ o: Options) {
        var rng = SplitMix64(seed: 0x636f_6e74_6964)
        let before = heapInUse()
        let rssBefore = residentBytes()
        let registry = ContainerRegistry()
        let hostNet: UInt64 = 4_026_531_840
        registry.apply(.discovered(ProcessKey(pid: 1, start: 1), parent: 0, namespaces: NamespaceSet([.net: hostNet, .mnt: 4_026_531_841, .pid: 4_026_531_836])))
        var start: UInt64 = 1
        var nextPid: Int32 = 1
        func newPid() -> Int32 {
            nextPid += 1 + Int32(rng.next() % 7)  // sparse, as on a real host
            return nextPid
        }
        func fork(_ parent: Int32, namespaces: NamespaceSet? = nil, flags: CloneFlags = []) -> ProcessKey {
            start += 1
            let key = ProcessKey(pid: newPid(), start: start)
            registry.apply(.created(parent: parent, child: key, cloneFlags: flags, namespaces: namespaces))
            return key
        }
        let runc = fork(1)
        let runcWriter = Writer(process: runc, hasAuditControl: true, uid: 0, auid: 1000, ses: 3, comm: "runc", exe: "/usr/bin/runc")

        // Top-level containers, each first process in a new netns; a fifth of them nested.
        var members: [[Int32]] = []
        let nestedCount = o.containers / 5
        for c in 0..<(o.containers - nestedCount) {
            let first = fork(runc.pid, namespaces: NamespaceSet([.net: 4_026_540_000 + UInt64(c)]), flags: .newNet)
            try! registry.register(writer: runcWriter, target: first, id: ContainerID(UInt64(100_000 + c))!)
            members.append([first.pid])
        }
        for n in 0..<nestedCount {
            // A runtime inside container n registers its own child.
            let inner = fork(members[n][0])
            let innerWriter = Writer(process: inner, hasAuditControl: true, comm: "crun", exe: "/usr/bin/crun")
            let first = fork(inner.pid)
            try! registry.register(writer: innerWriter, target: first, id: ContainerID(UInt64(200_000 + n))!)
            members[n].append(inner.pid)
            members.append([first.pid])
        }
        // Fill: 90% of processes inside containers (forked from a member), the rest on the host.
        var all: [Int32] = members.flatMap { $0 }
        all.reserveCapacity(o.processes)
        while registry.processCount < o.processes {
            let child: ProcessKey
            if rng.next() % 10 == 0 {
                child = fork(1)
            } else {
                let c = Int(rng.next() % UInt64(members.count))
                let parent = members[c][Int(rng.next() % UInt64(members[c].count))]
                child = fork(parent)
                members[c].append(child.pid)
            }
            all.append(child.pid)
        }
        let after = heapInUse()
        let rssAfter = residentBytes()
        // The benchmark's own pid lists are not the engine's memory.
        let pidBytes = all.capacity * MemoryLayout<Int32>.stride + members.reduce(0) { $0 + $1.capacity * 4 }
        func perProcess(_ a: Int?, _ b: Int?) -> String {
            guard let a, let b else { return "unknown" }
            return "\(Int((Double(b - a - pidBytes) / Double(registry.processCount)).rounded()))"
        }

        // The events: pids drawn at random from the live ones (host pids get no annotation).
        var picks = [Int32](repeating: 0, count: 1 << 20)
        for i in picks.indices { picks[i] = all[Int(rng.next() % UInt64(all.count))] }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(256)
        var annotated = 0
        var bytes = 0
        let mask = picks.count - 1
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            picks.withUnsafeBufferPointer { p in
                for i in 0..<o.events {
                    buffer.removeAll(keepingCapacity: true)
                    if registry.appendAnnotation(record: 1, pid: p[i & mask], to: &buffer) {
                        annotated += 1
                        bytes &+= buffer.count
                    }
                }
            }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("processes: \(registry.processCount)")
        print("containers: \(registry.containerCount)")
        print("events: \(o.events) (annotated \(annotated), \(bytes) bytes)")
        print("seconds: \(seconds)")
        print("events/s: \(Int(Double(o.events) / seconds))")
        print("bytes per tracked process: \(perProcess(before, after))")
        print("rss bytes per tracked process: \(perProcess(rssBefore, rssAfter))")
        if let corpus = o.corpus {
            AnnotateBench.run(registry: registry, pids: all, corpus: corpus, events: min(o.events, 2_000_000))
        }
    }
}

/// A small, fast, seeded generator so runs are comparable.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
