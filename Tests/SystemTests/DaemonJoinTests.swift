import AuditCodec
import AuditPipeline
import Glibc
import LinuxAudit
import Testing

/// SPEC §4 "Joining by namespaces" on the live kernel: a process that enters a
/// registered container's own pid namespace (nsenter -p, as runc exec does) and its
/// children carry the container's chain, and an op=join CONTAINER_OP names it with
/// the operator's auid. A container sharing the host's pid namespace gets no joins.
extension DaemonTests {
    static let joinKey = "contid-join"

    @Test func aProcessEnteringAContainersPidNamespaceJoinsItWithTheOperatorsAuid() throws {
        try withDaemon(rules: { "-w \($0)/w -p wa -k \(Self.joinKey)\n" }) { daemon, _ in
            let out = try daemon.shell("""
                /usr/bin/unshare -p -f --mount-proc busybox sleep 60 > /dev/null 2>&1 & u=$!
                while [ -z "$(cat /proc/$u/task/$u/children 2>/dev/null)" ]; do busybox sleep 0.02; done
                t=$(cat /proc/$u/task/$u/children | tr -d ' '); echo "t=$t"
                $CONTID set $t 7401; echo "rc=$?"
                busybox sleep 60 > /dev/null 2>&1 & h=$!; echo "h=$h"
                $CONTID set $h 7402; echo "hrc=$?"
                # The operator: auid 4321, entering the container's pid namespace.
                /bin/sh -c 'echo 4321 > /proc/self/loginuid; exec /usr/bin/nsenter -t '$t' -p -- busybox sh -c "echo x >> $D/w/file; busybox sh -c \\"echo y >> $D/w/file\\"; echo inside=\\$\\$"'
                # Entering the pid namespace of a container that shares the host's: no join.
                /usr/bin/nsenter -t $h -p -- busybox sh -c "echo z >> $D/w/file"
                kill -9 $t $h; wait
                """)
            let v = Self.values(out)
            #expect(v["rc"] == "0", "\(out)")
            #expect(v["hrc"] == "0", "\(out)")
            #expect(v["inside"] == "1" || v["inside"].flatMap(Int.init).map { $0 > 1 && $0 < 100 } == true, "\(out)")
            let keyed = { (events: [LoggedEvent]) in events.filter { $0.key == Self.joinKey } }
            #expect(try daemon.waitForLog { keyed($0).count >= 3 })
            let events = keyed(try daemon.events())
            #expect(events.count == 3, "\(events.map(\.records))")
            let inside = events.filter { $0.chain == "7401" }
            #expect(inside.count == 2, "\(events.map(\.records))")
            #expect(events.filter { $0.chain == nil }.count == 1, "\(events.map(\.records))")
            // One join: the process nsenter started in the namespace (its child inherited the container).
            let isJoin = { (r: AuditRecord) in r.type == .containerOp && r["op"] == "join" }
            #expect(try daemon.waitForLog { $0.flatMap(\.records).contains(where: isJoin) })
            let joins = try daemon.events().flatMap(\.records).filter(isJoin)
            #expect(joins.count == 1, "\(joins.map(\.line))")
            let joiner = try #require(inside.compactMap(\.pid).min())
            let body = joins.first.map { String($0.body.drop { $0 == " " }) } ?? ""
            #expect(body.hasPrefix("op=join opid=\(joiner) contid=7401 old-contid=-1 pid=\(joiner) uid=0 auid=4321 ses="), "\(body)")
            #expect(body.hasSuffix(" res=1"))
            #expect(try daemon.status()["joins"] == 1)
        }
    }
}
