import ArgumentParser
import ContainerEngine
import LinuxAudit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

// contid demo: a tour of contid on a root shell, end to end on the live kernel. A
// private contidd (its own temporary directories, a watch rule), two runc containers
// with a busybox-static rootfs and the OCI hook, a refused duplicate ID, a nested
// container (a runc inside a system container), and the trail read back with
// ausearch and contid replay. Where runc is missing, the containers are process trees
// in their own pid namespaces (unshare) registered with `contid set --new`.
// Everything it started is stopped and removed; only the log stays, and it says where.

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "A self-contained tour: a private contidd, runc containers with the OCI hook, nesting, the trail.",
        discussion: """
            Needs root, contidd next to this contid, /bin/busybox from busybox-static, ausearch \
            (auditd package) and, for real containers, runc (else unshare from util-linux). It \
            starts a private contidd in a temporary directory (its own log, socket, state and \
            rules: a watch on the directory the containers write to and an exec rule for \
            processes with a container ID), runs two containers that write files and run \
            programs, shows `contid ps --tree`, a second container refused for a live ID \
            (ENOTUNIQ), a nested container (a runc inside a registered system container: \
            chain child,^parent), each container's events by ausearch and by contid replay, and \
            the CONTAINER_OP/CONTAINER_INFO records. At the end, or on Ctrl-C, it removes \
            every container, stops contidd (which restores the kernel's audit state) and \
            deletes its files except the log (unless --remove-log). scripts/run --demo runs it.
            """)

    @Flag(help: "Delete the log too at the end (by default it is kept and its path printed).")
    var removeLog = false
    @Flag(help: "Use pid-namespaced process trees even where runc is installed.")
    var withoutRunc = false

    func run() throws {
        guard geteuid() == 0 else { throw ValidationError("contid demo needs root: it runs contidd, the kernel's audit daemon") }
        let tour = try Tour(useRunc: !withoutRunc)
        var failure: (any Error)?
        do { try tour.run() } catch { failure = error }
        tour.cleanUp(keepLog: !removeLog)
        if let failure {
            printError("contid demo: \(failure)")
            throw ExitCode(1)
        }
    }
}

/// Why the tour stopped early.
struct TourFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

final class Tour {
    let work: String
    let contid: String  // a copy under `work`: nested runtimes see it at the same path
    let contidd: String
    let runc: String?
    let shared: String
    var daemon: pid_t = 0
    var signals: Int32 = -1
    var runcRoots: [String] = []
    var trees: [pid_t] = []
    let client: RegistrationClient

    init(useRunc: Bool) throws {
        let me: String
        do { me = try ProcFS().executable(pid: getpid()) } catch { throw TourFailure("cannot read /proc/self/exe: \(error)") }
        let dir = String(me[..<(me.lastIndex(of: "/") ?? me.startIndex)])
        contidd = dir + "/contidd"
        guard access(contidd, X_OK) == 0 else { throw TourFailure("no contidd next to contid (\(contidd)); build both: swift build -c release") }
        guard access("/bin/busybox", X_OK) == 0 else { throw TourFailure("no /bin/busybox: apt-get install busybox-static") }
        guard access("/usr/bin/ausearch", X_OK) == 0 || access("/usr/sbin/ausearch", X_OK) == 0 || access("/sbin/ausearch", X_OK) == 0 else {
            throw TourFailure("no ausearch: apt-get install auditd (its daemon need not run)")
        }
        runc = useRunc ? ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"].first { access($0, X_OK) == 0 } : nil
        if runc == nil, access("/usr/bin/unshare", X_OK) != 0 { throw TourFailure("neither runc nor unshare: apt-get install runc") }
        work = "/tmp/contid-demo-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        shared = work + "/shared"
        contid = work + "/bin/contid"
        client = RegistrationClient(runDir: work + "/run")
        try FileSystem.makeDirectories(work + "/bin", mode: 0o755)
        chmod(work, 0o755)
        try FileManager.default.copyItem(atPath: me, toPath: contid)
        signals = try SignalPipe.install()
    }

    // MARK: output and processes

    func step(_ title: String) throws {
        if !SignalPipe.take(signals).isEmpty { throw TourFailure("interrupted") }
        print("\n== \(title)")
    }

    func note(_ text: String) { print("   \(text)") }

    /// Runs `command` with /bin/sh; returns its exit status.
    @discardableResult
    func sh(_ command: String) throws -> Int32 {
        fflush(nil)  // what the tour printed comes before what the command prints
        let pid = try ChildProcess.spawn("/bin/sh", ["sh", "-c", command])
        let status = try ChildProcess.wait(pid)
        return (status >> 8) & 0xff
    }

    /// Prints `$ shown` and runs `command` (by default the same), output to the terminal.
    @discardableResult
    func show(_ shown: String, _ command: String? = nil) throws -> Int32 {
        print("$ \(shown)")
        return try sh(command ?? shown)
    }

    /// The output (stdout and stderr) of `command`.
    func capture(_ command: String) throws -> (text: String, status: Int32) {
        let file = work + "/capture.out"
        let status = try sh("(\(command)) > \(quote(file)) 2>&1")
        let text = String(decoding: (try FileSystem.read(file)) ?? [], as: UTF8.self)
        try FileSystem.remove(file)
        return (text, status)
    }

    func quote(_ s: String) -> String { "'" + s.replacing("'", with: "'\\''") + "'" }

    func write(_ text: String, to path: String, mode: mode_t = 0o644) throws {
        try FileSystem.writeAtomically(Array(text.utf8), to: path, mode: mode)
    }

    /// Checks `condition` every 50 ms until it holds or `seconds` pass.
    func waitUntil(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(Int(seconds * 1000))
        while clock.now < deadline {
            if try condition() { return true }
            usleep(50_000)
        }
        return try condition()
    }

    var log: String { work + "/log/audit.log" }
    var logText: String { String(decoding: (try? FileSystem.read(log)) ?? [], as: UTF8.self) }

    // MARK: the tour

    func run() throws {
        try step("a private contidd in \(work)")
        try startDaemon()
        try FileSystem.makeDirectories(shared, mode: 0o755)
        let webID = "7e57ab1e-0000-4000-8000-0000\(String(UInt32.random(in: 0x1000_0000...0xffff_ffff), radix: 16))"
        let dbName = "demo-db"
        let dbID = ContainerID(runtimeContainerID: dbName).description
        if let runc { try containersWithRunc(runc, webID: webID, dbName: dbName, dbID: dbID) } else {
            try containersAsProcessTrees(webID: webID, dbID: dbID)
        }
        try trail([("web", webID), ("db", dbID), ("nested", nestedChain)])
    }

    private var nestedChain = ""

    func startDaemon() throws {
        try FileSystem.makeDirectories(work + "/rules.d", mode: 0o755)
        try write("""
            # contid demo: writes into the containers' shared directory, and execs of processes with a container ID
            -w \(shared) -p wa -k demo
            -a always,exit -F arch=b64 -S execve -F contid!=unset -k demo-exec

            """, to: work + "/rules.d/10-demo.rules")
        note("rules: -w \(shared) -p wa -k demo; -a always,exit -F arch=b64 -S execve -F contid!=unset -k demo-exec")
        let command = "exec \(quote(contidd)) --config /dev/null --log-dir \(quote(work + "/log")) --run-dir \(quote(work + "/run"))"
            + " --state-dir \(quote(work + "/state")) --rules-dir \(quote(work + "/rules.d")) 2> \(quote(work + "/contidd.err"))"
        print("$ contidd --log-dir \(work)/log --run-dir \(work)/run --state-dir \(work)/state --rules-dir \(work)/rules.d &")
        daemon = try ChildProcess.spawn("/bin/sh", ["sh", "-c", command])
        let up = waitUntil(20) { (try? client.status()) != nil || !ChildProcess.exists(daemon) }
        guard up, ChildProcess.exists(daemon) else {
            let err = String(decoding: (try? FileSystem.read(work + "/contidd.err")) ?? [], as: UTF8.self)
            throw TourFailure("contidd did not start: \(err)")
        }
        note("contidd \(daemon) answers on \(work)/run/contid.sock")
    }

    // MARK: runc

    /// A rootfs of busybox-static's applets.
    func makeRootfs(_ dir: String) throws {
        for d in ["bin", "proc", "dev", "sys", "tmp", "shared"] { try FileSystem.makeDirectories(dir + "/" + d, mode: 0o755) }
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: dir + "/bin/busybox")
        for applet in ["sh", "echo", "cat", "ls", "sleep", "touch", "mkdir"] {
            try FileManager.default.createSymbolicLink(atPath: dir + "/bin/" + applet, withDestinationPath: "busybox")
        }
    }

    /// The hook entry `contid hook-config --runtime runc` prints, decoded as it would be by runc.
    func hookEntries(optional: Bool = false) throws -> [String: [OCIConfig.Hook]] {
        let text = HookConfigCommand.render(runtime: .runc, contid: contid, runDir: client.runDir, optional: optional, timeout: 10)
        do { return try JSONDecoder().decode(OCIConfig.HooksDocument.self, from: Data(text.utf8)).hooks } catch {
            throw TourFailure("hook-config's output does not decode: \(error)")
        }
    }

    func writeBundle(_ dir: String, rootfs: String, args: [String], annotations: [String: String], system: Bool = false) throws {
        try FileSystem.makeDirectories(dir, mode: 0o755)
        let config = OCIConfig.container(rootfs: rootfs, args: args, annotations: annotations, hooks: try hookEntries(),
                                         shared: system ? nil : shared, systemSharing: system ? work : nil)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileSystem.writeAtomically(Array(try encoder.encode(config)), to: dir + "/config.json", mode: 0o644)
    }

    func containersWithRunc(_ runc: String, webID: String, dbName: String, dbID: String) throws {
        let runcRoot = work + "/runc"
        runcRoots.append(runcRoot)
        let r = "\(quote(runc)) --root \(quote(runcRoot))"
        try step("the OCI hook for runc's config.json, as contid hook-config prints it")
        try show("\(contid) hook-config --runtime runc --run-dir \(work)/run")

        try step("two runc containers with a busybox-static rootfs and the hook: web (ID from its annotation) and demo-db (ID from its name)")
        try makeRootfs(work + "/rootfs")
        for name in ["web", "db"] { _ = try sh("mkfifo \(quote(shared + "/go-" + name))") }
        let script = { (name: String) in
            """
            read go < /shared/go-\(name)
            echo "hello from \(name)" > /shared/\(name).txt
            cat /shared/\(name).txt > /shared/\(name).copy
            sh -c 'echo "a grandchild in \(name)" >> /shared/\(name).txt'
            ls /shared > /dev/null
            echo done > /shared/end-\(name)
            """
        }
        try writeBundle(work + "/web", rootfs: work + "/rootfs", args: ["sh", "-c", script("web")],
                        annotations: ["org.contid.id": webID, "org.contid.name": "web", "org.contid.label.tier": "front"])
        try writeBundle(work + "/db", rootfs: work + "/rootfs", args: ["sh", "-c", script("db")],
                        annotations: ["org.opencontainers.image.ref.name": "busybox"])
        note("web's config.json has annotations org.contid.id=\(webID), org.contid.name=web, org.contid.label.tier=front")
        note("demo-db has none: its ID is python3 -c 'import uuid; print(uuid.uuid5(uuid.NAMESPACE_URL, \"oci:\(dbName)\"))' = \(dbID)")
        for (name, id) in [("web", "web"), ("db", dbName)] {
            let status = try show("runc run -d --bundle \(work)/\(name) \(id)", "\(r) run -d --bundle \(quote(work + "/" + name)) \(id) > \(quote(work + "/" + name + ".out")) 2>&1")
            guard status == 0 else { throw TourFailure("runc run \(id) failed: \(String(decoding: (try? FileSystem.read(work + "/\(name).out")) ?? [], as: UTF8.self))") }
        }
        note("runc ran the hook at createRuntime: both first processes are registered before they run sh")

        try step("contid ps --tree --contained: the containers' processes and their IDs")
        try show("\(contid) --run-dir \(work)/run ps --tree --contained")

        try step("a second container with web's live ID is refused (ENOTUNIQ), and runc does not start it")
        try writeBundle(work + "/web2", rootfs: work + "/rootfs", args: ["sh", "-c", "echo never runs"], annotations: ["org.contid.id": webID])
        let dup = try capture("\(r) run --bundle \(quote(work + "/web2")) web-again")
        print("$ runc run --bundle \(work)/web2 web-again")
        print(dup.text, terminator: dup.text.hasSuffix("\n") ? "" : "\n")
        guard dup.status != 0, dup.text.contains("ENOTUNIQ") else { throw TourFailure("the duplicate ID was not refused") }
        note("exit status \(dup.status); the refused attempt is in the trail as CONTAINER_OP res=0 errno=ENOTUNIQ")

        try step("the containers run: each writes files, runs cat, ls and a grandchild shell")
        for name in ["web", "db"] { _ = try sh("echo go > \(quote(shared + "/go-" + name))") }
        for id in ["web", dbName] {
            let stopped = waitUntil(30) { ((try? capture("\(r) state \(id)").text) ?? "").contains("\"stopped\"") }
            guard stopped else { throw TourFailure("container \(id) did not finish within 30 s") }
            _ = try sh("\(r) delete \(id) > /dev/null 2>&1")
        }
        try show("cat \(shared)/web.txt \(shared)/db.txt")

        try step("a nested container: a runc inside a registered system container registers its own container")
        try makeRootfs(work + "/inner-rootfs")
        try writeBundle(work + "/inner", rootfs: work + "/inner-rootfs",
                        args: ["sh", "-c", "echo 'from the nested container' > /shared/nested.txt; echo done > /shared/end-nested"],
                        annotations: ["org.contid.name": "inner"])
        try makeSystemRootfs(work + "/system-rootfs")
        let innerRoot = work + "/inner-runc"
        runcRoots.append(innerRoot)
        try writeBundle(work + "/system", rootfs: work + "/system-rootfs",
                        args: ["/bin/sh", "-c", "\(runc) --root \(innerRoot) run --bundle \(work)/inner demo-inner > \(work)/inner.out 2>&1; echo $? > \(work)/inner.rc"],
                        annotations: ["org.contid.name": "system"], system: true)
        note("the system container sees the host's /usr, /opt and /etc read-only and \(work): it runs the host's runc")
        let outer = try show("runc run -d --bundle \(work)/system demo-system", "\(r) run -d --bundle \(quote(work + "/system")) demo-system > \(quote(work + "/system.out")) 2>&1")
        guard outer == 0 else { throw TourFailure("the system container did not start: \(String(decoding: (try? FileSystem.read(work + "/system.out")) ?? [], as: UTF8.self))") }
        let innerDone = waitUntil(30) { ((try? FileSystem.read(work + "/inner.rc")) ?? []).count > 0 }
        let rc = String(decoding: (try? FileSystem.read(work + "/inner.rc")) ?? [], as: UTF8.self)
        guard innerDone, rc == "0\n" else {
            throw TourFailure("the nested runc failed: \(String(decoding: (try? FileSystem.read(work + "/inner.out")) ?? [], as: UTF8.self))")
        }
        _ = waitUntil(30) { ((try? capture("\(r) state demo-system").text) ?? "").contains("\"stopped\"") }
        _ = try sh("\(r) delete -f demo-system > /dev/null 2>&1")
        let systemID = ContainerID(runtimeContainerID: "demo-system").description
        let innerID = ContainerID(runtimeContainerID: "demo-inner").description
        nestedChain = "\(innerID),^\(systemID)"
        note("the outer runc exited at once (-d); the inner runc, a process of the system container, registered demo-inner")
        note("demo-inner's chain: \(nestedChain) (its own ID, then its parent's)")
    }

    /// A system container's rootfs: the host's merged /usr through links, mount points for the binds.
    func makeSystemRootfs(_ dir: String) throws {
        for d in ["usr", "opt", "etc", "proc", "dev", "sys", "tmp", "run"] { try FileSystem.makeDirectories(dir + "/" + d, mode: 0o755) }
        try FileSystem.makeDirectories(dir + work, mode: 0o755)
        for (link, target) in [("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"), ("sbin", "usr/sbin")] {
            try FileManager.default.createSymbolicLink(atPath: dir + "/" + link, withDestinationPath: target)
        }
    }

    // MARK: without runc

    func containersAsProcessTrees(webID: String, dbID: String) throws {
        try step("no runc here: two process trees in pid namespaces of their own (unshare), registered with contid set --new")
        var firsts: [(String, pid_t)] = []
        for (name, id) in [("web", webID), ("db", dbID)] {
            _ = try sh("mkfifo \(quote(shared + "/go-" + name))")
            let nested = name == "web" ? """
                ( read go < \(shared)/go-nested; echo 'from the nested container' > \(shared)/nested.txt; echo done > \(shared)/end-nested ) &
                \(contid) --run-dir \(work)/run set --new --label name=inner $! 4242
                echo go > \(shared)/go-nested; wait
                """ : ""
            let script = """
                echo "hello from \(name)" > \(shared)/\(name).txt
                cat \(shared)/\(name).txt > \(shared)/\(name).copy
                sh -c 'echo "a grandchild in \(name)" >> \(shared)/\(name).txt'
                \(nested)
                echo done > \(shared)/end-\(name)
                """
            if name == "web" { _ = try sh("mkfifo \(quote(shared + "/go-nested"))") }
            let pid = try ChildProcess.spawn("/bin/sh", ["sh", "-c", "read go < \(quote(shared + "/go-" + name)); exec /usr/bin/unshare --pid --fork --mount-proc /bin/sh -c \(quote(script))"])
            trees.append(pid)
            do {
                let chain = try client.set(pid: pid, id: id, new: true, labels: [("name", name), ("runtime", "unshare")], forParent: false)
                note("contid set --new \(pid) \(id)  ->  \(chain)")
            } catch { throw TourFailure("registering \(name): \(error)") }
            firsts.append((name, pid))
        }
        try step("contid ps --tree --contained")
        try show("\(contid) --run-dir \(work)/run ps --tree --contained")
        try step("a second registration of web's live ID is refused")
        let other = try ChildProcess.spawn("/bin/sh", ["sh", "-c", "read go < \(quote(shared + "/go-db"))"])
        trees.append(other)
        do {
            _ = try client.set(pid: other, id: webID, new: true, labels: [], forParent: false)
            throw TourFailure("the duplicate ID was not refused")
        } catch let failure as RegistrationFailure { print(failure.description) }
        kill(other, SIGKILL)
        _ = try ChildProcess.wait(other)
        trees.removeAll { $0 == other }
        try step("the trees run; web's registers a nested container (ID 4242) for its own child")
        for (name, pid) in firsts {
            _ = try sh("echo go > \(quote(shared + "/go-" + name))")
            _ = try ChildProcess.wait(pid)
            trees.removeAll { $0 == pid }
        }
        nestedChain = "4242,^\(webID)"
    }

    // MARK: the trail

    func trail(_ containers: [(name: String, chain: String)]) throws {
        let ends = containers.map { "\(runc == nil ? shared : "/shared")/end-\($0.name)" }
        let complete = waitUntil(20) { let t = logText; return ends.allSatisfy { t.contains("name=\"\($0)\"") } }
        if !complete { note("(the log does not hold every container's last write yet; showing what is there)") }
        for c in containers {
            try step("\(c.name)'s events in the host log, by ausearch (those with a CONTAINER_ID record contid=\(c.chain))")
            print("$ ausearch --input \(log) -k demo")
            let out = try capture("ausearch --input \(quote(log)) -k demo").text
            let events = out.split(separator: "----\n").filter { event in
                event.split(separator: "\n").contains { $0.hasSuffix(" contid=\(c.chain)") }
            }
            for e in events.prefix(3) {
                for line in e.split(separator: "\n") where line.hasPrefix("type=SYSCALL") || line.hasPrefix("type=PATH") || line.contains(" contid=") {
                    print("  " + String(line.prefix(220)))
                }
                print("  ----")
            }
            note("\(events.count) events of \(c.name) under key demo\(events.count > 3 ? " (3 shown)" : "")")
        }
        try step("contid replay re-attributes the same log offline (JSON, one event per line)")
        print("$ contid replay --format json \(log)   (events with a chain)")
        let json = try capture("\(quote(contid)) replay --format json \(quote(log))").text
        let lines = json.split(separator: "\n").filter { !$0.contains("\"contid\":null,\"records\"") }
        for l in lines.prefix(6) { print("  " + String(l.prefix(200)) + (l.count > 200 ? "..." : "")) }
        note("\(lines.count) events with a container ID in replay")
        try step("every registration attempt and each container's labels: CONTAINER_OP and CONTAINER_INFO")
        try show("grep -E '^type=CONTAINER_(OP|INFO)' \(log)")
    }

    // MARK: clean-up

    func cleanUp(keepLog: Bool) {
        print("\n== cleaning up")
        for root in runcRoots {
            let ids = ((try? capture("\(runc ?? "runc") --root \(quote(root)) list -q").text) ?? "").split(separator: "\n")
            for id in ids { _ = try? sh("\(runc ?? "runc") --root \(quote(root)) delete -f \(id) > /dev/null 2>&1") }
        }
        for pid in trees {
            kill(pid, SIGKILL)
            _ = try? ChildProcess.wait(pid)
        }
        if daemon > 0 {
            kill(daemon, SIGTERM)
            let status = (try? ChildProcess.wait(daemon)) ?? -1
            note(status == 0 ? "contidd stopped; it restored the kernel's audit state" : "contidd exited with status \(status)")
            daemon = 0
        }
        if keepLog {
            _ = try? sh("cd \(quote(work)) && rm -rf bin rootfs inner-rootfs system-rootfs web web2 db inner system shared runc inner-runc run state rules.d *.out *.rc contidd.err")
            print("   the log stays: \(log) (ausearch --input \(log); contid replay \(log)); rm -r \(work) removes it")
        } else {
            _ = try? sh("rm -rf \(quote(work))")
            note("removed \(work)")
        }
    }
}

/// The part of an OCI runtime config (runtime-spec config.md) the demo's containers use.
struct OCIConfig: Encodable {
    struct Hook: Codable { var path: String; var args: [String]?; var timeout: Int? }
    struct HooksDocument: Decodable { var hooks: [String: [Hook]] }
    struct User: Encodable { var uid = 0; var gid = 0 }
    struct Capabilities: Encodable { var bounding: [String]; var effective: [String]; var permitted: [String] }
    struct Rlimit: Encodable { var type: String; var hard: Int; var soft: Int }
    struct Process: Encodable {
        var terminal = false
        var user = User()
        var args: [String]
        var env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        var cwd = "/"
        var capabilities: Capabilities
        var rlimits = [Rlimit(type: "RLIMIT_NOFILE", hard: 1024, soft: 1024)]
        var noNewPrivileges = true
    }
    struct Root: Encodable { var path: String; var readonly = false }
    struct Mount: Encodable { var destination: String; var type: String; var source: String; var options: [String]? }
    struct Namespace: Encodable { var type: String }
    struct Device: Encodable { var allow: Bool; var access: String }
    struct Resources: Encodable { var devices: [Device] }
    struct Linux: Encodable {
        var namespaces = ["pid", "network", "ipc", "uts", "mount"].map(Namespace.init)
        var resources: Resources?
        var maskedPaths: [String]?
        var readonlyPaths: [String]?
    }

    var ociVersion = "1.0.2"
    var process: Process
    var root: Root
    var hostname: String
    var mounts: [Mount]
    var annotations: [String: String]
    var hooks: [String: [Hook]]
    var linux: Linux

    static let baseMounts = [
        Mount(destination: "/proc", type: "proc", source: "proc"),
        Mount(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        Mount(destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        Mount(destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        Mount(destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"]),
    ]

    /// A small container (`shared` bound at /shared), or a system container that runs
    /// the host's runtime (`systemSharing` bound at its own path; all capabilities and
    /// devices, the host's /usr, /opt, /etc read-only, /sys read-write for cgroups).
    static func container(rootfs: String, args: [String], annotations: [String: String], hooks: [String: [Hook]],
                          shared: String?, systemSharing: String?) -> OCIConfig {
        var mounts = baseMounts
        var linux = Linux()
        let caps: [String]
        if let dir = systemSharing {
            caps = hostCapabilities()
            mounts.append(Mount(destination: "/sys", type: "bind", source: "/sys", options: ["rbind", "rw"]))
            for d in ["/usr", "/opt", "/etc"] { mounts.append(Mount(destination: d, type: "bind", source: d, options: ["rbind", "ro"])) }
            mounts.append(Mount(destination: dir, type: "bind", source: dir, options: ["rbind", "rw"]))
            mounts.append(Mount(destination: "/run", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=755"]))
            linux.resources = Resources(devices: [Device(allow: true, access: "rwm")])
        } else {
            caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            mounts.append(Mount(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]))
            if let shared { mounts.append(Mount(destination: "/shared", type: "bind", source: shared, options: ["rbind", "rw"])) }
            linux.maskedPaths = ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
            linux.readonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
        var process = Process(args: args, capabilities: Capabilities(bounding: caps, effective: caps, permitted: caps))
        process.noNewPrivileges = systemSharing == nil
        return OCIConfig(process: process, root: Root(path: rootfs), hostname: "contid-demo", mounts: mounts,
                         annotations: annotations, hooks: hooks, linux: linux)
    }

    /// The capabilities this process holds (a container may get no more: runc fails with EPERM).
    static func hostCapabilities() -> [String] {
        OCICapabilities.names(in: (try? ProcFS().status(pid: getpid()).capEff) ?? 0)
    }
}
