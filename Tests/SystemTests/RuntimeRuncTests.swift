import AuditCodec
import ContainerEngine
import Foundation
import Glibc
import LinuxAudit
import Testing

/// The real runc (1.1) with `contid oci-hook` in config.json, installed from
/// `contid hook-config`'s output, against a release contidd (SPEC §9, issue 8).
/// Serialized, and across processes by the audit flock.
@Suite(.serialized)
struct RuntimeRuncTests {
    /// What each test container does once released through /data/go: writes by its
    /// first process, by an exec'd program, by a forked shell and by a grandchild.
    static let script = """
        read go < /data/go
        echo sh-$1 > /data/sh-$1.out
        /bin/touch /data/touched-$1
        cat /data/sh-$1.out > /data/cat-$1.out
        sh -c "echo grandchild > /data/gc-$1.out"
        """

    static func bundle(_ daemon: DaemonHarness, _ name: String, annotations: [String: String] = [:],
                       optional: Bool = false, hook: Bool = true) throws -> OCIBundle {
        let data = "\(daemon.root)/data\(name)"
        try? FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        if access(data + "/go", F_OK) != 0 { try makeFifo(data + "/go") }
        return try OCIBundle(at: "\(daemon.root)/bundle\(name)", args: ["sh", "-c", script, "sh", name],
                             annotations: annotations, mounts: [(data, "/data")],
                             hooks: hook ? try hookConfig(daemon, runtime: "runc", optional: optional) : nil)
    }

    /// The successful set records (res=1), as CONTAINER_OP records.
    static func registrations(_ daemon: DaemonHarness) throws -> [AuditRecord] {
        try daemon.events().flatMap(\.records).filter { $0.type == .containerOp && $0["op"] == "set" && $0["res"] == "1" }
    }

    static func rules(_ root: String, _ names: [String]) -> String {
        for n in names { mkdir("\(root)/data\(n)", 0o755) }  // watched directories exist before the rules load
        return "-a always,exit -F arch=b64 -S execve -k oci-exec\n" + names.map { "-w \(root)/data\($0) -p wa -k oci-\($0)\n" }.joined()
    }

    @Test func twoRuncContainersAtOnceCarryTheirOwnIDsOnEveryExecAndWriteAndRuncAndTheHostNone() throws {
        try withDaemon(rules: { Self.rules($0, ["A", "B"]) }) { daemon, _ in
            let runc = Runc(under: daemon.root)
            defer { runc.cleanUp() }
            let idA = "a1a1a1a1-0000-4000-8000-00000000000a", idB = "b2b2b2b2-0000-4000-8000-00000000000b"
            let ridA = "contid-sys-a-\(randomHex(6))", ridB = "contid-sys-b-\(randomHex(6))"
            let runcA = try runc.start(ridA, bundle: try Self.bundle(daemon, "A", annotations: ["org.contid.id": idA]))
            let runcB = try runc.start(ridB, bundle: try Self.bundle(daemon, "B", annotations: ["org.contid.id": idB]))
            // Both registered and waiting: running at the same time.
            let registered = try daemon.waitForLog { _ in ((try? Self.registrations(daemon)) ?? []).count >= 2 }
            #expect(registered, "A: \(runc.outputText(ridA)) B: \(runc.outputText(ridB)) contidd: \(daemon.stderrText)")
            let initA = try #require(try runc.state(ridA)?.pid), initB = try #require(try runc.state(ridB)?.pid)
            #expect(try daemon.request(.get(pid: initA)).last == .ok(idA))
            #expect(try daemon.request(.get(pid: initB)).last == .ok(idB))
            // The set records: the target is runc's container process, the writer runc itself.
            let sets = try Self.registrations(daemon)
            let setA = try #require(sets.first { $0["opid"] == "\(initA)" }), setB = try #require(sets.first { $0["opid"] == "\(initB)" })
            #expect(setA["contid"] == idA && setA["pid"] == "\(runcA)" && setA.exe == realPath("/usr/sbin/runc"))
            #expect(setB["contid"] == idB && setB["pid"] == "\(runcB)")

            try release("\(daemon.root)/dataA/go")
            try release("\(daemon.root)/dataB/go")
            #expect(try runc.wait(ridA) == 0, "\(runc.outputText(ridA))")
            #expect(try runc.wait(ridB) == 0, "\(runc.outputText(ridB))")
            // The host writes into A's directory after the container has gone.
            _ = try runClean(["/usr/bin/touch", "\(daemon.root)/dataA/host-touched"])

            let writesOf = { (events: [LoggedEvent], n: String) in events.filter { $0.key == "oci-\(n)" } }
            let expectedFiles = ["sh", "touched", "cat", "gc"]
            func complete(_ events: [LoggedEvent]) -> Bool {
                let paths = Set((writesOf(events, "A") + writesOf(events, "B")).flatMap(\.paths))
                return paths.contains { $0.hasSuffix("/host-touched") } && ["A", "B"].allSatisfy { n in
                    expectedFiles.allSatisfy { f in paths.contains { $0.hasPrefix("/data/\(f)-\(n)") } }
                }
            }
            #expect(try daemon.waitForLog(complete))
            let events = try daemon.events()
            for (n, id) in [("A", idA), ("B", idB)] {
                // Every write made inside the container carries its ID; the test's own
                // (opening the fifo) and the host's touch carry none.
                for e in writesOf(events, n) {
                    if e.pid == getpid() || e.paths.contains(where: { $0.hasSuffix("/host-touched") }) {
                        #expect(e.chain == nil, "\(e.lines)")
                    } else {
                        #expect(e.chain == id, "\(e.lines)")
                    }
                }
                // Every exec inside it: its first process's exec of sh, touch, cat, the grandchild's sh.
                func ofContainer(_ e: LoggedEvent) -> Bool {
                    guard e.key == "oci-exec", e.exe == "/bin/busybox", let args = e.execArguments else { return false }
                    return args.last == n || args.contains { $0.hasSuffix("-\(n)") || $0.contains("-\(n).out") }
                }
                let execs = events.filter(ofContainer)
                let programs = execs.compactMap { $0.execArguments?.first }.sorted()
                #expect(programs == ["/bin/touch", "cat", "sh", "sh"], "\(execs.map { $0.execArguments ?? [] })")
                #expect(execs.allSatisfy { $0.chain == id }, "\(execs.map(\.lines))")
            }
            // Nothing else in the containers' file system view ran without an ID.
            #expect(events.filter { $0.key == "oci-exec" && $0.exe == "/bin/busybox" }.allSatisfy { $0.chain == idA || $0.chain == idB })
            // runc itself: its own exec, and the `runc init` it starts, carry no ID.
            let runcExecs = events.filter { $0.key == "oci-exec" && ($0.pid == runcA || $0.pid == runcB || $0.execArguments?.dropFirst().first == "init") }
            #expect(runcExecs.count >= 2)
            #expect(runcExecs.allSatisfy { $0.chain == nil }, "\(runcExecs.map(\.lines))")
            // The host's own execs (the touch above) carry none.
            let hostTouch = events.filter { $0.key == "oci-exec" && $0.exe == realPath("/usr/bin/touch") }
            #expect(!hostTouch.isEmpty && hostTouch.allSatisfy { $0.chain == nil })
            #expect(try daemon.status()["kernel_lost"] == 0)
        }
    }

    @Test func idFormsAnnotationUUIDSixtyFourHexAndPlainNameGiveTheDocumentedIDs() throws {
        try withDaemon(rules: { _ in "" }) { daemon, _ in
            let runc = Runc(under: daemon.root)
            defer { runc.cleanUp() }
            let uuid = "c0ffee00-1234-4567-89ab-\(randomHex(12))"
            let hex64 = randomHex(64)
            let plain = "contid-plain-\(randomHex(8))"
            let python = try pythonUUID5(plain)
            let cases: [(rid: String, annotations: [String: String], expected: String)] = [
                ("contid-annotated-\(randomHex(6))", ["org.contid.id": uuid], uuid),
                (hex64, [:], ContainerID(high: UInt64(hex64.prefix(16), radix: 16)!,
                                         low: UInt64(hex64.dropFirst(16).prefix(16), radix: 16)!)!.description),
                (plain, [:], python),
            ]
            #expect(python.count == 36 && python.dropFirst(14).first == "5")
            #expect(cases[1].expected == "\(hex64.prefix(8))-\(hex64.dropFirst(8).prefix(4))-\(hex64.dropFirst(12).prefix(4))-\(hex64.dropFirst(16).prefix(4))-\(hex64.dropFirst(20).prefix(12))")
            for (k, c) in cases.enumerated() {
                try runc.start(c.rid, bundle: try Self.bundle(daemon, "I\(k)", annotations: c.annotations))
                #expect(try daemon.waitForLog { _ in ((try? Self.registrations(daemon)) ?? []).count > k }, "\(runc.outputText(c.rid))")
                let pid = try #require(try runc.state(c.rid)?.pid)
                #expect(try daemon.request(.get(pid: pid)).last == .ok(c.expected), "\(c.rid)")
                #expect(try Self.registrations(daemon).last?["contid"] == c.expected)
                try release("\(daemon.root)/dataI\(k)/go")
                #expect(try runc.wait(c.rid) == 0, "\(runc.outputText(c.rid))")
            }
        }
    }

    /// Containers started one right after another get the same pid namespace inode
    /// (the kernel reuses it as soon as the last one's is freed): each is a new container
    /// with its own ID, none joins the one before.
    @Test func containersRunOneAfterAnotherEachGetTheirOwnID() throws {
        try withDaemon(rules: { _ in "" }) { daemon, _ in
            let runc = Runc(under: daemon.root)
            defer { runc.cleanUp() }
            let bundle = try OCIBundle(at: daemon.root + "/bundleS", args: ["true"], hooks: try hookConfig(daemon, runtime: "runc"))
            var expected: [String] = []
            for k in 0..<4 {
                let rid = "contid-seq-\(k)-\(randomHex(6))"
                expected.append(ContainerID(runtimeContainerID: rid).description)
                try runc.start(rid, bundle: bundle)
                #expect(try runc.wait(rid) == 0, "\(runc.outputText(rid))")
            }
            #expect(try daemon.waitForLog { _ in ((try? Self.registrations(daemon)) ?? []).count == 4 })
            #expect(try Self.registrations(daemon).compactMap { $0["contid"] } == expected)
            #expect(try daemon.events().flatMap(\.records).filter { $0.type == .containerOp && $0["op"] == "join" }.isEmpty)
        }
    }

    /// The same runc registers two containers with one annotation ID: the second is
    /// ENOTUNIQ, its hook fails and runc does not start it. Under an --optional
    /// installation the same request warns and the container runs without an ID.
    @Test func aSecondContainerWithALiveAnnotationIDIsRefusedENOTUNIQAndDoesNotStartUnlessOptional() throws {
        try withDaemon(rules: { Self.rules($0, ["D3"]) }) { daemon, _ in
            let runc = Runc(under: daemon.root)
            defer { runc.cleanUp() }
            let id = "d0d0d0d0-0000-4000-8000-\(randomHex(12))"
            let first = "contid-first-\(randomHex(6))", second = "contid-second-\(randomHex(6))", third = "contid-third-\(randomHex(6))"
            try runc.start(first, bundle: try Self.bundle(daemon, "D1", annotations: ["org.contid.id": id]))
            #expect(try daemon.waitForLog { _ in ((try? Self.registrations(daemon)) ?? []).count == 1 })

            try runc.start(second, bundle: try Self.bundle(daemon, "D2", annotations: ["org.contid.id": id]))
            let status = try runc.wait(second)
            #expect(status != nil && status != 0, "\(runc.outputText(second))")
            let out = runc.outputText(second)
            #expect(out.contains("ENOTUNIQ: container \(second) (process "), "\(out)")
            #expect(out.contains("ID \(id)) not registered: "), "\(out)")
            #expect(try runc.state(second) == nil, "runc kept the refused container")
            let refused = try daemon.events().flatMap(\.records).filter { $0.type == .containerOp && $0["errno"] == "ENOTUNIQ" }
            #expect(refused.count == 1 && refused.first?["contid"] == id && refused.first?.exe == realPath("/usr/sbin/runc"))

            // --optional: starts, runs, its writes carry no ID.
            try runc.start(third, bundle: try Self.bundle(daemon, "D3", annotations: ["org.contid.id": id], optional: true))
            try release("\(daemon.root)/dataD3/go")
            #expect(try runc.wait(third) == 0, "\(runc.outputText(third))")
            let thirdWrites = { (events: [LoggedEvent]) in events.filter { $0.key == "oci-D3" && $0.pid != getpid() } }
            #expect(try daemon.waitForLog { thirdWrites($0).contains { $0.paths.contains("/data/gc-D3.out") } })
            #expect(try thirdWrites(daemon.events()).allSatisfy { $0.chain == nil })
            #expect(try daemon.events().flatMap(\.records).filter { $0.type == .containerOp && $0["errno"] == "ENOTUNIQ" }.count == 2)

            try release("\(daemon.root)/dataD1/go")
            #expect(try runc.wait(first) == 0, "\(runc.outputText(first))")
        }
    }

    /// The hook run by hand the way runc runs it: the --optional warning on stderr,
    /// contidd down as a failure that says so, and every other stage a no-op.
    @Test func hookWarnsUnderOptionalFailsWhenContiddIsDownAndIgnoresOtherStages() throws {
        try withDaemon(rules: { _ in "" }) { daemon, _ in
            let out = try daemon.shell("""
                busybox sleep 30 & a=$!
                printf '{"ociVersion":"1.0.2","id":"dup1","status":"creating","pid":%d,"bundle":"/b","annotations":{"org.contid.id":"4242"}}' $a | $CONTID oci-hook --stage createRuntime; echo "rc1=$?"
                busybox sleep 30 & b=$!
                printf '{"ociVersion":"1.0.2","id":"dup2","status":"creating","pid":%d,"bundle":"/b","annotations":{"org.contid.id":"4242"}}' $b | $CONTID oci-hook --stage createRuntime --optional; echo "rc2=$?"
                echo "getb=$($CONTID get $b)"
                printf '{"ociVersion":"1.0.2","id":"dup2","status":"stopped","bundle":"/b"}' | $CONTID oci-hook --stage poststop; echo "rc3=$?"
                printf 'not json' | $CONTID oci-hook --stage poststop; echo "rc4=$?"
                printf 'not json' | $CONTID oci-hook; echo "rc5=$?"
                printf '{"ociVersion":"1.0.2","id":"dup3","status":"creating","pid":%d,"bundle":"/b"}' $b | $CONTID oci-hook --run-dir $D/nowhere; echo "rc6=$?"
                printf 'not json' | $CONTID oci-hook --stage=poststop; echo "rc7=$?"
                printf '{"ociVersion":"1.0.2","id":"dup4","status":"creating","pid":%d,"bundle":"/b"}' $b | $CONTID oci-hook --run-dir=$D/nowhere --optional; echo "rc8=$?"
                $CONTID oci-hook --help | grep -c 'OCI runtime hook'
                kill $a $b
                """)
            let v = DaemonTests.values(out)
            #expect(v["rc1"] == "0", "\(out)")
            #expect(v["rc2"] == "0", "\(out)")
            #expect(v["getb"] == "-1")
            #expect(out.contains("contid oci-hook: warning: container starts without a container ID: ENOTUNIQ: container dup2 (process "), "\(out)")
            #expect(v["rc3"] == "0" && v["rc4"] == "0")
            #expect(v["rc5"] == "2")
            #expect(out.contains("contid oci-hook: the OCI state is not valid JSON"), "\(out)")
            #expect(v["rc6"] == "2")
            #expect(out.contains("ENOENT: contidd is not running (nothing listens on \(daemon.root)/nowhere/contid.sock): container dup3 (process "), "\(out)")
            // The same through the argument parser (hook-config's arguments skip it).
            #expect(v["rc7"] == "0" && v["rc8"] == "0", "\(out)")
            #expect(out.contains("contid oci-hook: warning: container starts without a container ID: ENOENT: contidd is not running (nothing listens on \(daemon.root)/nowhere/contid.sock): container dup4 (process "), "\(out)")
            #expect(out.contains("\n1\n"), "\(out)")
        }
    }
}
