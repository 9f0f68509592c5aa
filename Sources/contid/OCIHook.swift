import ArgumentParser
import ContainerEngine
import LinuxAudit

#if canImport(Glibc)
import Glibc
#endif

// contid oci-hook (SPEC §9): an OCI runtime hook. At createRuntime the runtime has
// made the container's first process and not yet run the user's program; the hook
// registers that process as a new container, acting for the runtime (its parent),
// so every process of the container carries the ID from its first instruction.

/// The OCI hook stages (runtime-spec config.md "POSIX-platform Hooks").
enum OCIHookStage: String, ExpressibleByArgument, CaseIterable {
    case prestart, createRuntime, createContainer, startContainer, poststart, poststop
}

struct OCIHookCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "oci-hook",
        abstract: "OCI runtime hook: register a container's first process at createRuntime (state JSON on stdin).",
        discussion: """
            Install it with the output of `contid hook-config` (runc/crun: config.json's hooks; \
            podman/CRI-O: a hooks.d file). At createRuntime it reads the runtime's state JSON \
            (id, pid, bundle, annotations) from standard input and registers pid as a new \
            container (`contid set --new`), acting for the runtime that ran the hook. The ID is \
            the annotation org.contid.id when the container has it, else derived from the \
            container's id: a UUID as is, a 64-hex id (podman, docker, containerd) by its first \
            32 hex digits, anything else the UUIDv5 in the RFC 4122 URL namespace of the name \
            "oci:" + id (python3: uuid.uuid5(uuid.NAMESPACE_URL, "oci:" + id)). Labels: runtime \
            (the hook's parent's executable), id, bundle, name (io.kubernetes.container.name, \
            else org.contid.name), image (io.kubernetes.cri.image-name, else \
            org.opencontainers.image.ref.name), pod (io.kubernetes.pod.namespace/name), pod-uid \
            (io.kubernetes.pod.uid), and K=V for every annotation org.contid.label.K=V. \
            At any other stage (given by --stage, or a state whose status is not "creating") \
            it exits 0 at once. A registration that fails fails the hook: the errno name first \
            on standard error, exit status 1 (refused) or 2 (contidd not running or not \
            answering), and the runtime does not start the container. Only an installation \
            with --optional warns and exits 0 instead; an annotation cannot ask for that.
            """)

    @OptionGroup var daemon: DaemonSocketOptions
    @Option(help: "The stage this hook entry runs at; only createRuntime registers. Without it, a state whose status is \"creating\" registers.")
    var stage: OCIHookStage?
    @Flag(help: "Warn and exit 0 when the container cannot be registered (it then runs without an ID). Fail-closed is the default.")
    var optional = false

    func run() throws {
        let status = OCIHook(runDir: daemon.runDir, stage: stage, optional: optional).run()
        if status != 0 { throw ExitCode(status) }
    }
}

/// The hook itself, apart from its argument parsing: runc runs it for every container,
/// so `contid oci-hook` with the arguments `hook-config` writes skips the parser
/// (Contid.main), whose start-up costs more than the registration.
struct OCIHook {
    var runDir: String?
    var stage: OCIHookStage?
    var optional: Bool

    /// The arguments hook-config writes (`--stage S --run-dir DIR [--optional]`, in any
    /// order); nil for anything else, which then goes through the parser.
    init?(arguments: ArraySlice<String>) {
        var rest = arguments
        optional = false
        while let a = rest.popFirst() {
            switch a {
            case "--optional": optional = true
            case "--stage":
                guard let v = rest.popFirst(), let s = OCIHookStage(rawValue: v) else { return nil }
                stage = s
            case "--run-dir":
                guard let v = rest.popFirst(), !v.hasPrefix("-") else { return nil }
                runDir = v
            default: return nil
            }
        }
    }

    init(runDir: String?, stage: OCIHookStage?, optional: Bool) {
        self.runDir = runDir
        self.stage = stage
        self.optional = optional
    }

    /// Registers (at createRuntime) and returns the exit status: 0, or 1 (refused) / 2 (not asked).
    func run() -> Int32 {
        if let stage, stage != .createRuntime { return 0 }
        do {
            try register()
            return 0
        } catch {
            if optional {
                printError("contid oci-hook: warning: container starts without a container ID: \(error.text)")
                return 0
            }
            printError(error.text)
            return error.status
        }
    }

    /// Why the hook could not register: `ERRNO: ...` or a plain sentence, and the exit status.
    struct HookFailure: Error {
        var text: String
        var status: Int32
    }

    private func register() throws(HookFailure) {
        let input: [UInt8]
        do { input = try FileSystem.read("/proc/self/fd/0") ?? [] } catch {
            throw HookFailure(text: "contid oci-hook: cannot read the OCI state from standard input: \(error)", status: 2)
        }
        let state: OCIState
        do { state = try OCIState(parsing: input) } catch {
            throw HookFailure(text: "contid oci-hook: \(error.reason)", status: 2)
        }
        if stage == nil, state.status != "creating" { return }
        guard let pid = state.pid else {
            throw HookFailure(text: "contid oci-hook: the OCI state of container \(state.id) has no pid (at createRuntime it names the container's first process)", status: 2)
        }
        let id = state.containerIDText
        let labels = state.labels(runtime: Self.runtimeName()).map { ($0.key, $0.value) }
        let client = RegistrationClient(runDir: runDir)
        do {
            _ = try client.set(pid: pid, id: id, new: true, labels: labels, forParent: true)
        } catch {
            let what = "container \(state.id) (process \(pid), ID \(id)) not registered"
            if !error.refused, error.errno == "ENOENT" || error.errno == "ECONNREFUSED" {
                throw HookFailure(text: "\(error.errno): contidd is not running (nothing listens on \(client.socketPath)): \(what)",
                                  status: error.exitStatus)
            }
            throw HookFailure(text: "\(error.errno): \(what): \(error.message)", status: error.exitStatus)
        }
    }

    /// The runtime that ran the hook: its parent's executable's name (runc, crun), or its comm.
    static func runtimeName() -> String? {
        let parent = getppid()
        let proc = ProcFS()
        if let exe = try? proc.executable(pid: parent), let name = exe.split(separator: "/").last {
            return String(name.hasSuffix(" (deleted)") ? name.dropLast(10) : name)
        }
        return try? proc.stat(pid: parent).comm
    }
}
