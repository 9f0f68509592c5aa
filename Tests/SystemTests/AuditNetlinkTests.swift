import AuditCodec
import Glibc
import LinuxAudit
import SystemPackage
import Testing

/// Everything that changes kernel audit state. Serialized here, and across
/// processes by the flock taken in `withKernelAuditState`.
@Suite(.serialized)
struct AuditNetlinkTests {
    @Test func statusRoundTripChangesAndRestoresBacklogLimit() throws {
        try withKernelAuditState { audit in
            let before = try audit.status()
            #expect(before.failure <= 1)
            let changed: UInt32 = before.backlogLimit == 4242 ? 4243 : 4242
            try audit.setBacklogLimit(changed)
            let during = try audit.status()
            #expect(during.backlogLimit == changed)
            #expect(during.enabled == before.enabled)
            #expect(during.failure == before.failure)
            #expect(during.pid == before.pid)
            #expect(during.backlogWaitTime == before.backlogWaitTime)
            try audit.setBacklogLimit(before.backlogLimit)
            #expect(try audit.status().backlogLimit == before.backlogLimit)

            // BACKLOG_WAIT_TIME needs the full struct on the wire.
            try audit.setBacklogWaitTime(before.backlogWaitTime + 250)
            #expect(try audit.status().backlogWaitTime == before.backlogWaitTime + 250)
            try audit.setBacklogWaitTime(before.backlogWaitTime)
            #expect(try audit.status().backlogWaitTime == before.backlogWaitTime)

            try audit.setRateLimit(before.rateLimit + 1000)
            #expect(try audit.status().rateLimit == before.rateLimit + 1000)
            try audit.setRateLimit(before.rateLimit)
            #expect(try audit.status().rateLimit == before.rateLimit)

            // Only silent (0) and printk (1) are representable; panic (2) never is.
            let other: AuditFailureMode = before.failure == 1 ? .silent : .printk
            try audit.setFailure(other)
            #expect(try audit.status().failure == other.rawValue)
            try audit.setFailure(AuditFailureMode(rawValue: before.failure) ?? .printk)
            #expect(try audit.status().failure == before.failure)
        }
    }

    @Test func watchRuleWithKeyIsListedTriggersAMulticastSyscallRecordAndDeletes() throws {
        try withKernelAuditState { audit in
            let dir = "/tmp/contid-systest-\(getpid())"
            mkdir(dir, 0o700)
            defer { rmdir(dir) }
            let file = "\(dir)/watched"
            close(open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600))
            defer { unlink(file) }

            let key = "contid-systest-watch"
            let rule = AuditRule.watch(path: file, permissions: .write, key: key)
            #expect(rule.encoded().count == 1040 + file.utf8.count + key.utf8.count)
            let reader = try AuditNetlink(mode: .multicast)
            try audit.setEnabled(true)
            try audit.addRule(rule)
            #expect(try audit.listRules().filter { $0.key == key } == [rule])
            #expect(throws: LinuxAuditError.rejected(request: "AUDIT_ADD_RULE", .fileExists)) { try audit.addRule(rule) }

            let child = try spawn(["/usr/bin/touch", file])
            #expect(try waitChild(child) == 0)
            let record = try awaitRecord(on: reader) { type, text in
                type == 1300 && recordFields(text)["key"] == "\"\(key)\"" && recordFields(text)["pid"] == "\(child)"
            }
            let fields = try #require(record.map { recordFields($0.text) }, "no SYSCALL record with key \(key) for pid \(child)")
            #expect(fields["arch"] == "c000003e")
            #expect(fields["syscall"] == "257")  // openat
            #expect(fields["success"] == "yes")
            #expect(fields["ppid"] == "\(getpid())")
            #expect(fields["comm"] == "\"touch\"")
            #expect(fields["exe"] == "\"\(realPath("/usr/bin/touch"))\"")
            #expect(reader.gaps == 0)

            try audit.deleteRule(rule)
            #expect(try audit.listRules().filter { $0.key == key }.isEmpty)
            #expect(throws: LinuxAuditError.rejected(request: "AUDIT_DEL_RULE", .noSuchFileOrDirectory)) { try audit.deleteRule(rule) }
        }
    }

    @Test func registeredAuditDaemonReceivesUnicastRecordsWithThePayloadLengthQuirk() throws {
        try withKernelAuditState { audit in
            let key = "contid-systest-unicast"
            let rule = AuditRule(list: .exit, action: .always, syscalls: .init([59]),
                                 fields: [.init(.arch, .equal, AuditArch.x86_64.rawValue),
                                          .init(.ppid, .equal, UInt32(getpid())), .init(.key, .equal, key)])
            let daemon = try AuditNetlink(mode: .unicast)
            try audit.setEnabled(true)
            try audit.addRule(rule)
            try daemon.register()
            var unregistered = false
            defer { if !unregistered { try? daemon.unregister() } }
            #expect(try audit.status().pid == UInt32(getpid()))
            // A second daemon is refused while we are alive.
            let rival = try AuditNetlink(mode: .unicast)
            #expect(throws: LinuxAuditError.self) { try rival.register(pid: 1) }

            let child = try spawn(["/bin/true"])
            #expect(try waitChild(child) == 0)
            let record = try awaitRecord(on: daemon) { type, text in
                type == 1300 && recordFields(text)["key"] == "\"\(key)\"" && recordFields(text)["pid"] == "\(child)"
            }
            let text = try #require(record?.text, "no unicast SYSCALL record with key \(key)")
            // Read with the recv() length: the text ends exactly at the key, no header bytes or padding.
            #expect(text.hasPrefix("audit("))
            #expect(text.hasSuffix("key=\"\(key)\""))
            let fields = recordFields(text)
            #expect(fields["syscall"] == "59")
            #expect(fields["success"] == "yes")
            #expect(fields["pid"] == "\(child)")
            #expect(fields["ppid"] == "\(getpid())")
            #expect(fields["exe"] == "\"\(realPath("/bin/true"))\"")

            try daemon.unregister()
            unregistered = true
            #expect(try audit.status().pid == 0)
            try audit.deleteRule(rule)
        }
    }

    @Test func userMessage2900ComesBackAsARecord() throws {
        try withKernelAuditState { audit in
            let reader = try AuditNetlink(mode: .multicast)
            try audit.setEnabled(true)
            let text = "op=systest contid=123456 pid=\(getpid()) res=1"
            try audit.sendUserMessage(type: .containerOp, text: text)
            let record = try awaitRecord(on: reader) { type, body in type == 2900 && body.contains(text) }
            let body = try #require(record.flatMap { recordBody($0.text) }, "no type 2900 record")
            let procfs = ProcFS()
            let auid = try procfs.loginUID(pid: getpid())
            let ses = try procfs.sessionID(pid: getpid())
            #expect(body == "pid=\(getpid()) uid=\(getuid()) auid=\(auid) ses=\(ses) msg='\(text)'")
        }
    }

    @Test func selfExclusionAndTrackingRulesLoadFirstSilenceUsAndDeleteCleanly() throws {
        try withKernelAuditState { audit in
            let key = "contid-systest-track"
            let tracking = AuditArch.supported.map { AuditRule.tracking(arch: $0, key: key) }
            let exclusion = AuditRule.selfExclusion()
            let reader = try AuditNetlink(mode: .multicast)
            try audit.setEnabled(true)
            func tracked(_ record: (type: UInt16, text: String), pid: pid_t, syscalls: Set<String>) -> Bool {
                let f = recordFields(record.text)
                return record.type == 1300 && f["key"] == "\"\(key)\"" && f["pid"] == "\(pid)" && syscalls.contains(f["syscall"] ?? "")
            }
            /// Spawns /bin/true and reads records until the child's tracked execve and exit_group
            /// are there, and `more` holds; then until a marker sent after them, so that what
            /// is absent by then was never written. Our clone record is written when
            /// posix_spawn returns (the vfork parent resumes), the child's exit_group before
            /// waitpid returns: both are queued before the marker.
            func spawnTrackedChild(more: (pid_t, [(type: UInt16, text: String)]) -> Bool)
                throws -> (child: pid_t, records: [(type: UInt16, text: String)]) {
                let child = try spawn(["/bin/true"])
                #expect(try waitChild(child) == 0)
                let marker = try sendMarker(audit)
                let records = try collectRecords(on: reader) { records in
                    records.contains { tracked($0, pid: child, syscalls: ["59"]) }
                        && records.contains { tracked($0, pid: child, syscalls: ["231"]) }
                        && more(child, records) && records.contains { isMarker($0, marker) }
                }
                #expect(records.contains { tracked($0, pid: child, syscalls: ["59"]) }, "no tracked execve of child \(child)")
                #expect(records.contains { tracked($0, pid: child, syscalls: ["231"]) }, "no tracked exit_group of child \(child)")
                #expect(records.contains { isMarker($0, marker) }, "the marker sent after child \(child) did not come back")
                #expect(reader.gaps == 0, "the reader dropped records: absence proves nothing")
                return (child, records)
            }
            /// Our own clone (or clone3) that made `child`: its return value is the child's pid
            /// (threads of the test runner start with clone too).
            func ownClone(of child: pid_t, in records: [(type: UInt16, text: String)]) -> (type: UInt16, text: String)? {
                records.first { tracked($0, pid: getpid(), syscalls: ["56", "435"]) && recordFields($0.text)["exit"] == "\(child)" }
            }

            // Control: with the tracking rules alone, our own clone for posix_spawn is audited.
            for rule in tracking { try audit.addRule(rule) }
            let unexcluded = try spawnTrackedChild { child, records in ownClone(of: child, in: records) != nil }
            let ownSyscall = try #require(ownClone(of: unexcluded.child, in: unexcluded.records).flatMap { recordFields($0.text)["syscall"] },
                                          "control: no record of our own clone")
            #expect(["56", "435"].contains(ownSyscall))

            // The exclusion goes in front of the tracking rules (AUDIT_FILTER_PREPEND).
            try audit.addRule(exclusion, prepend: true)
            let listed = try audit.listRules()
            #expect(listed == [exclusion] + tracking)
            #expect(listed.first?.syscalls.isAll == true)
            #expect(AuditRule.contidRules(key: key) == [exclusion] + tracking)
            // libaudit decodes our encoding the same way.
            let exe = try #require(AuditRule.ownExecutable)
            let auditctl = try runCapturing(["/usr/sbin/auditctl", "-l"])
            #expect(auditctl.status == 0)
            #expect(auditctl.output == """
                -a never,exit -S all -F pid=\(getpid()) -F exe=\(exe)
                -a always,exit -F arch=b64 -S clone,fork,vfork,execve,exit_group,unshare,setns,execveat,clone3 -F key=\(key)
                -a always,exit -F arch=b32 -S fork,execve,clone,vfork,exit_group,unshare,setns,execveat,clone3 -F key=\(key)

                """)

            // Now our clone is silent while the child's execve and exit_group are still tracked.
            let excluded = try spawnTrackedChild { _, _ in true }.records
            let ours = excluded.filter { $0.type == 1300 && recordFields($0.text)["pid"] == "\(getpid())" }.map(\.text)
            #expect(ours.isEmpty, "records of our own pid got through: \(ours)")

            for rule in [exclusion] + tracking { try audit.deleteRule(rule) }
            #expect(try audit.listRules().filter { $0 == exclusion || $0.key == key }.isEmpty)
        }
    }

    @Test func multicastOverflowIsCountedAsAGapAndReadingGoesOn() throws {
        try withKernelAuditState { audit in
            let reader = try AuditNetlink(mode: .multicast, receiveBufferSize: 1)
            let lostBefore = try audit.status().lost
            try audit.setEnabled(true)
            for i in 0..<200 { try audit.sendUserMessage(type: 2900, text: "op=overflow-test n=\(i) res=1") }
            // Nothing is read until kauditd has taken the 200 off its queue and delivered
            // them: the one-page buffer overflows. Then reading goes on: a marker sent after
            // the overflow comes through (sent again each second, in case the tail of the
            // flood filled the buffer again).
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(20)
            while try audit.status().backlog > 0, clock.now < deadline { usleep(10_000) }
            let buffer = NetlinkReceiveBuffer()
            var gaps = 0
            var flood = 0
            var markers: Set<String> = []
            var markerSeen = false
            var markerSent = clock.now
            while !markerSeen, clock.now < deadline {
                if gaps > 0, markers.isEmpty || clock.now - markerSent > .seconds(1) {
                    markers.insert(try sendMarker(audit))
                    markerSent = clock.now
                }
                let r = try reader.receive(into: buffer, timeout: .milliseconds(100)) { m in
                    let text = String(decoding: m.payload, as: UTF8.self)
                    if m.type == 2900 && text.contains("op=overflow-test") { flood += 1 }
                    if markers.contains(where: { isMarker((m.type, text), $0) }) { markerSeen = true }
                }
                gaps += r.gaps
            }
            #expect(gaps >= 1)
            #expect(reader.gaps == gaps)
            #expect(markerSeen, "nothing read after the overflow")
            #expect(flood < 200, "read all 200 records through a one-page buffer")
            // The kernel does not count multicast overflow as lost.
            #expect(try audit.status().lost == lostBefore)
        }
    }
}
