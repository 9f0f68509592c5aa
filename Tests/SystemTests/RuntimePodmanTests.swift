import AuditCodec
import ContainerEngine
import Foundation
import Glibc
import LinuxAudit
import Testing

/// The real podman (4.3) with `contid hook-config --runtime podman`'s file in a
/// hooks.d directory. On this machine podman needs runc (crun refuses the hybrid
/// cgroup layout), cgroupfs, explicit ulimits and no network (SPEC §9, issue 8).
@Suite(.serialized)
struct RuntimePodmanTests {
    static let podman = "/usr/bin/podman"

    /// podman's global options here, with the hooks directory.
    static func global(_ hooksDir: String) -> [String] {
        [podman, "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--hooks-dir", hooksDir]
    }

    static let runOptions = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "none"]

    /// A hooks.d directory holding exactly what `contid hook-config --runtime podman` printed.
    static func hooksDir(_ daemon: DaemonHarness) throws -> String {
        let dir = daemon.root + "/hooks.d"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try write(try hookConfig(daemon, runtime: "podman"), to: dir + "/50-contid.json")
        return dir
    }

    /// `podman rm -f` of every container id written to the cid files (clean-up even on failure).
    static func remove(_ cidFiles: [String]) {
        for f in cidFiles {
            guard let cid = try? String(decoding: readAll(f), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines),
                  !cid.isEmpty else { continue }
            _ = try? runClean([podman, "rm", "-f", cid], within: .seconds(60))
        }
    }

    @Test func podmanRunWithTheHookInAHooksDirGivesTheAnnotationIDAndContainerInfoHasPodmansID() throws {
        try withDaemon(rules: { RuntimeRuncTests.rules($0, ["P"]) }) { daemon, _ in
            let hooks = try Self.hooksDir(daemon)
            let bundle = try RuntimeRuncTests.bundle(daemon, "P", hook: false)
            let cidFile = daemon.root + "/podman.cid"
            defer { Self.remove([cidFile]) }
            let id = "0dd0dd00-0000-4000-8000-\(randomHex(12))"
            let output = daemon.root + "/podman.out"
            let podman = try spawnRedirected(Self.global(hooks) + ["run", "--rm", "--cidfile", cidFile] + Self.runOptions + [
                "--annotation", "org.contid.id=\(id)", "-v", "\(daemon.root)/dataP:/data", "--rootfs", bundle.rootfs,
                "sh", "-c", RuntimeRuncTests.script, "sh", "P",
            ], output: output)
            var reaped = false
            defer { if !reaped { kill(podman, SIGKILL); _ = try? waitChild(podman) } }
            let registered = try daemon.waitForLog(within: .seconds(60)) { _ in ((try? RuntimeRuncTests.registrations(daemon)) ?? []).count == 1 }
            let podmanOutput = { String(decoding: (try? readAll(output)) ?? [], as: UTF8.self) }
            #expect(registered, "\(podmanOutput())")
            let cid = String(decoding: try readAll(cidFile), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(cid.count == 64 && cid.allSatisfy(\.isHexDigit), "\(cid)")
            try release("\(daemon.root)/dataP/go")
            let status = try waitChild(podman)
            reaped = true
            #expect(status == 0, "\(podmanOutput())")

            let writes = { (events: [LoggedEvent]) in events.filter { $0.key == "oci-P" && $0.pid != getpid() } }
            #expect(try daemon.waitForLog { writes($0).contains { $0.paths.contains("/data/gc-P.out") } })
            let events = try daemon.events()
            #expect(writes(events).count >= 4)
            #expect(writes(events).allSatisfy { $0.chain == id }, "\(writes(events).map { $0.lines })")
            let set = try #require(try RuntimeRuncTests.registrations(daemon).first)
            #expect(set["contid"] == id && set.exe == realPath("/usr/sbin/runc"))
            let info = try #require(events.flatMap(\.records).first { $0.type == .containerInfo })
            let parsed = try ContainerInfo.parse(body: Array(info.body.utf8))
            #expect(parsed.id.description == id)
            #expect(parsed.labels["id"] == cid)
            #expect(parsed.labels["runtime"] == "runc")
            #expect(parsed.labels["bundle"]?.hasSuffix("/\(cid)/userdata") == true, "\(String(decoding: info.text, as: UTF8.self))")
        }
    }
}
