import AuditCodec
import ContainerEngine
import Foundation
import Glibc
import LinuxAudit

// Real OCI runtimes for the system tests: bundles with a busybox-static rootfs, the
// hook installed from `contid hook-config`'s own output, runc with a state root of
// the test's own (so its containers are the test's only), clean-up even on failure.

/// The busybox applets the test containers use.
let busyboxApplets = ["sh", "cat", "echo", "touch", "ls", "sleep", "true", "mkdir", "rm"]

/// A bundle directory: config.json from `runc spec`, rootfs with /bin/busybox and its applets.
struct OCIBundle {
    let path: String
    var rootfs: String { path + "/rootfs" }

    /// `hooks`: the JSON object `contid hook-config --runtime runc` printed (nil: no hook).
    /// `mounts`: bind mounts (host source, container destination), read-write.
    init(at path: String, args: [String], env: [String] = [], annotations: [String: String] = [:],
         mounts: [(source: String, destination: String)] = [], hooks: String?,
         edit: (inout [String: Any]) -> Void = { _ in }) throws {
        self.path = path
        let fm = FileManager.default
        for d in ["bin", "proc", "dev", "sys", "tmp", "data"] {
            try fm.createDirectory(atPath: path + "/rootfs/" + d, withIntermediateDirectories: true)
        }
        try fm.copyItem(atPath: realPath("/bin/busybox"), toPath: path + "/rootfs/bin/busybox")
        for applet in busyboxApplets { try fm.createSymbolicLink(atPath: path + "/rootfs/bin/" + applet, withDestinationPath: "busybox") }
        let spec = try runClean(["/usr/sbin/runc", "spec", "--bundle", path])
        guard spec.status == 0 else { throw SystemTestPrecondition(description: "runc spec failed: \(spec.output)") }
        let configPath = path + "/config.json"
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as! [String: Any]
        var process = config["process"] as! [String: Any]
        process["terminal"] = false
        process["args"] = args
        process["env"] = (process["env"] as? [String] ?? []) + env
        config["process"] = process
        var root = config["root"] as! [String: Any]
        root["readonly"] = false
        config["root"] = root
        if !annotations.isEmpty { config["annotations"] = annotations }
        var allMounts = config["mounts"] as? [[String: Any]] ?? []
        for m in mounts {
            allMounts.append(["destination": m.destination, "type": "bind", "source": m.source, "options": ["rbind", "rw"]])
        }
        config["mounts"] = allMounts
        if let hooks {
            let parsed = try JSONSerialization.jsonObject(with: Data(hooks.utf8)) as! [String: Any]
            config["hooks"] = parsed["hooks"]
        }
        edit(&config)
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted]).write(to: URL(fileURLWithPath: configPath))
    }
}

/// runc with a state root of its own; every container it was asked to run is
/// deleted (killed first) by `cleanUp`, which the tests call in a defer.
final class Runc {
    let root: String
    let logDir: String
    private(set) var ids: [String] = []
    private var running: [String: pid_t] = [:]

    init(under dir: String) {
        root = dir + "/runc-root"
        logDir = dir
    }

    /// `runc run` in the foreground, output to `logDir/ID.out`; returns runc's pid.
    @discardableResult
    func start(_ id: String, bundle: OCIBundle, detached: Bool = false) throws -> pid_t {
        ids.append(id)
        let argv = ["/usr/sbin/runc", "--root", root, "run"] + (detached ? ["-d"] : []) + ["--bundle", bundle.path, id]
        let pid = try spawnRedirected(argv, output: output(id))
        running[id] = pid
        return pid
    }

    func output(_ id: String) -> String { "\(logDir)/\(id).out" }
    func outputText(_ id: String) -> String { String(decoding: (try? readAll(output(id))) ?? [], as: UTF8.self) }

    /// Waits for the `runc run` of `id` to exit, within `limit`; returns its exit status (nil: still running).
    func wait(_ id: String, within limit: Duration = .seconds(60)) throws -> Int32? {
        guard let pid = running[id] else { return nil }
        var status: Int32 = 0
        let done = waitUntil(within: limit) { waitpid(pid, &status, WNOHANG) == pid }
        guard done else { return nil }
        running[id] = nil
        return (status >> 8) & 0xff
    }

    /// `runc state ID`'s status and pid, nil when runc knows no such container.
    func state(_ id: String) throws -> (status: String, pid: Int32)? {
        let r = try runClean(["/usr/sbin/runc", "--root", root, "state", id])
        guard r.status == 0, let data = r.output.data(using: .utf8),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return ((json["status"] as? String) ?? "?", Int32((json["pid"] as? Int) ?? 0))
    }

    func run(_ args: [String], within limit: Duration = .seconds(60)) throws -> (output: String, status: Int32) {
        let r = try runClean(["/usr/sbin/runc", "--root", root] + args, within: limit)
        return (r.output, (r.status >> 8) & 0xff)
    }

    /// Kills and deletes every container started here, and reaps their runc processes.
    func cleanUp() {
        for id in ids { _ = try? runClean(["/usr/sbin/runc", "--root", root, "delete", "-f", id], within: .seconds(30)) }
        for (_, pid) in running {
            kill(pid, SIGKILL)
            _ = try? waitChild(pid)
        }
        running = [:]
    }
}

/// `contid hook-config`'s output for this daemon, as a user installs it.
func hookConfig(_ daemon: DaemonHarness, runtime: String, optional: Bool = false) throws -> String {
    let r = try runClean([daemon.contid, "hook-config", "--runtime", runtime, "--run-dir", daemon.runDir] + (optional ? ["--optional"] : []))
    guard r.status == 0 else { throw SystemTestPrecondition(description: "contid hook-config failed: \(r.output)") }
    return r.output
}

/// python3's uuid5 in the URL namespace of `oci:` + name: an independent computation of SPEC §9's ID.
func pythonUUID5(_ name: String) throws -> String {
    let r = try runClean(["/usr/bin/python3", "-c", "import sys, uuid; print(uuid.uuid5(uuid.NAMESPACE_URL, 'oci:' + sys.argv[1]))", name])
    return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A random lower-case hex string of `count` digits.
func randomHex(_ count: Int) -> String {
    String((0..<count).map { _ in "0123456789abcdef".randomElement()! })
}

extension LoggedEvent {
    /// The EXECVE record's arguments, decoded (a0, a1, ...).
    var execArguments: [String]? {
        guard let r = records.first(where: { $0.type == .execve }), let argc = r["argc"].flatMap({ Int($0) }) else { return nil }
        return (0..<argc).map { r.field("a\($0)")?.decodedString ?? "?" }
    }
    var exe: String? { syscall?.exe }
    /// The records' lines, for messages.
    var lines: [String] { records.map { String(decoding: $0.text, as: UTF8.self) } }
    /// The names of every PATH record (a created file's parent directory comes first).
    var paths: [String] { records.filter { $0.type == .path }.compactMap { $0.field("name")?.decodedString } }
}

/// The capability names of this process's bounding set, as an OCI config names them
/// (a container may hold no capability its runtime lacks: runc fails with EPERM).
func boundingCapabilities() -> [String] {
    let status = String(decoding: (try? readAll("/proc/self/status")) ?? [], as: UTF8.self)
    let line = status.split(separator: "\n").first { $0.hasPrefix("CapBnd:") } ?? ""
    let mask = UInt64(line.split(separator: "\t").last ?? "", radix: 16) ?? 0
    return OCICapabilities.names(in: mask)
}

/// A system container that runs the host's own runc: the host's /usr, /opt (Swift's
/// runtime for contid) and /etc read-only, /sys (cgroups) read-write, every device,
/// every capability the host has, and each of `shared` at its own path (the test's
/// directory: contid, the socket, the inner bundles).
func systemContainerBundle(at path: String, args: [String], annotations: [String: String], shared: [String],
                           hooks: String?) throws -> OCIBundle {
    let bundle = try OCIBundle(at: path, args: args, annotations: annotations, hooks: hooks) { config in
        var process = config["process"] as! [String: Any]
        let caps = boundingCapabilities()
        process["capabilities"] = ["bounding": caps, "effective": caps, "permitted": caps]
        config["process"] = process
        var mounts = (config["mounts"] as? [[String: Any]] ?? []).filter {
            !["/sys", "/sys/fs/cgroup"].contains($0["destination"] as? String ?? "")
        }
        mounts.append(["destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "rw"]])
        for d in ["/usr", "/opt", "/etc"] { mounts.append(["destination": d, "type": "bind", "source": d, "options": ["rbind", "ro"]]) }
        for d in shared { mounts.append(["destination": d, "type": "bind", "source": d, "options": ["rbind", "rw"]]) }
        mounts.append(["destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=755"]])
        config["mounts"] = mounts
        var linux = config["linux"] as! [String: Any]
        linux["maskedPaths"] = nil
        linux["readonlyPaths"] = nil
        linux["resources"] = ["devices": [["allow": true, "access": "rwm"]]]
        config["linux"] = linux
    }
    // The host's merged /usr: bin, lib, lib64, sbin are links into it.
    let fm = FileManager.default
    try? fm.removeItem(atPath: bundle.rootfs + "/bin")
    for (link, target) in [("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"), ("sbin", "usr/sbin")] {
        try fm.createSymbolicLink(atPath: bundle.rootfs + "/" + link, withDestinationPath: target)
    }
    for d in ["usr", "opt", "etc", "run"] + shared.map({ String($0.dropFirst()) }) {
        try fm.createDirectory(atPath: bundle.rootfs + "/" + d, withIntermediateDirectories: true)
    }
    return bundle
}
