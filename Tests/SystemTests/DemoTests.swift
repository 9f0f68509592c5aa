import Foundation
import Glibc
import LinuxAudit
import Testing

/// `contid demo` runs to the end and leaves nothing behind: the kernel's audit rules
/// and status, the mounts, the processes and the cgroups are as before; of its
/// directory only the log stays (issue 8).
@Suite(.serialized)
struct DemoTests {
    static func mounts() -> [String] { completeLines("/proc/self/mountinfo").map { String($0.split(separator: " ").dropFirst(1).joined(separator: " ")) } }

    /// Every process's command line that names the demo's directories.
    static func demoProcesses() -> [String] {
        ((try? FileSystem.directoryEntries("/proc")) ?? []).compactMap { pid -> String? in
            guard Int32(pid) != nil, let bytes = try? readAll("/proc/\(pid)/cmdline") else { return nil }
            let line = String(decoding: bytes.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return line.contains("/tmp/contid-demo-") ? "\(pid): \(line)" : nil
        }
    }

    static func cgroups() -> [String] {
        ["pids", "memory", "cpu", "devices", "freezer"].flatMap { sub in
            ((try? FileSystem.directoryEntries("/sys/fs/cgroup/\(sub)")) ?? []).map { "\(sub)/\($0)" }
        }.sorted()
    }

    @Test func demoRunsToTheEndAndLeavesNoRulesProcessesMountsOrAuditStateBehind() throws {
        let (_, contid) = try DaemonHarness.binaries()
        try withKernelAuditState { control in
            let status = try control.status()
            let rules = try control.listRules()
            let mountsBefore = Self.mounts(), cgroupsBefore = Self.cgroups()
            #expect(Self.demoProcesses().isEmpty)
            let run = try runClean([contid, "demo"], within: .seconds(240))
            #expect((run.status >> 8) & 0xff == 0, "\(run.output)")
            // It showed what it says it shows.
            for line in ["== a private contidd in /tmp/contid-demo-", "== two runc containers", "$ runc run -d --bundle ",
                         "ENOTUNIQ: container web-again (process ", "== a nested container", "demo-inner's chain: ",
                         "contidd stopped; it restored the kernel's audit state", "the log stays: "] {
                #expect(run.output.contains(line), "missing \(line)")
            }
            let ps = run.output.split(separator: "\n").filter { $0.contains("{runtime=runc,id=") }
            #expect(ps.count >= 2, "\(run.output)")
            let events = run.output.split(separator: "\n").filter { $0.hasPrefix("   ") && $0.contains(" events of ") }
            #expect(events.count == 3 && events.allSatisfy { !$0.hasPrefix("   0 ") }, "\(events)")
            #expect(run.output.contains("op=set opid=") && run.output.contains("errno=ENOTUNIQ"))
            #expect(run.output.range(of: #"type=CONTAINER_OP msg=audit\([0-9.:]+\): op=set opid=[0-9]+ contid=[0-9a-f-]+ old-contid=[0-9a-f-]+ pid="#,
                                     options: .regularExpression) != nil)

            // Nothing left: audit state, rules, mounts, processes, cgroups; the directory holds only the log.
            let after = try control.status()
            #expect(after.enabled == status.enabled && after.pid == status.pid && after.backlogLimit == status.backlogLimit)
            #expect(try control.listRules() == rules)
            #expect(Self.mounts() == mountsBefore)
            #expect(Self.demoProcesses().isEmpty, "\(Self.demoProcesses())")
            #expect(Self.cgroups() == cgroupsBefore)
            let dir = try #require(run.output.split(separator: "\n").first { $0.hasPrefix("== a private contidd in ") }?
                .dropFirst("== a private contidd in ".count))
            #expect(try FileSystem.directoryEntries(String(dir)) == ["log"])
            #expect(access("\(dir)/log/audit.log", F_OK) == 0)
            _ = try runClean(["/bin/rm", "-rf", String(dir)])
        }
    }
}
