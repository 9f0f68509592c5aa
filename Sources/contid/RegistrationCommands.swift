import ArgumentParser
import AuditPipeline
import LinuxAudit
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

// contid set / get / capcontid / ps / status: requests to contidd's registration
// socket (SPEC §4, §11). `set` and `capcontid` act for the shell that ran them,
// as a write to /proc/PID/audit_containerid would: the daemon verifies from the
// kernel that this process's parent is the writer.

struct DaemonSocketOptions: ParsableArguments {
    @Option(name: .customLong("run-dir"),
            help: "contidd's run directory, holding contid.sock (default: $CONTID_RUN_DIR, else /run/contid).")
    var runDir: String?

    var client: RegistrationClient { RegistrationClient(runDir: runDir) }
}

func printError(_ line: String) {
    var s = line + "\n"
    s.withUTF8 { p in _ = write(2, p.baseAddress, p.count) }
}

/// Runs one client call; a failure prints `ERRNO: reason` first (SPEC §11) and exits
/// 1 (refused) or 2 (contidd could not be asked).
func answered<T>(_ body: () throws(RegistrationFailure) -> T) throws -> T {
    do { return try body() } catch {
        printError(error.description)
        throw ExitCode(error.exitStatus)
    }
}

struct SetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Register a container ID for a process (echo ID > /proc/PID/audit_containerid).",
        discussion: """
            The writer is the process that ran contid (its parent, usually a shell or a runtime): \
            contidd checks, in this order, that PID exists (ESRCH), that ID is not unset (EINVAL), \
            that the writer has CAP_AUDIT_CONTROL in the initial user namespace or capcontid (EPERM), \
            that PID has no children (EBUSY; its threads are no refusal: they all join the ID), that \
            PID is a descendant of the writer and not the writer itself (EXDEV), that PID has no ID \
            yet unless the writer is a member of PID's container (nesting; EEXIST), and that a \
            live ID belongs to this writer's orchestrator, the same uid, executable and own \
            container as the writer that created it, alive or not (ENOTUNIQ). Run it from the shell that started PID: in out=$(contid set ...) the writer \
            is the $(...) subshell, of which PID is not a descendant (EXDEV). Every attempt is \
            recorded as a CONTAINER_OP record (refusals beyond 10 a second per user are counted \
            in one set-suppressed record instead). With --new a live ID is refused (ENOTUNIQ) \
            even when this writer's orchestrator owns it: the request creates a container, it \
            never joins one. Labels (--label k=v, repeatable) are kept with the container and \
            recorded in its CONTAINER_INFO record; keys and values may not contain ',' or '=' \
            (EINVAL), and all of them, as k=v,k=v, at most 4096 bytes (E2BIG). The target is \
            passed to contidd as a pidfd opened here, so PID is read in this shell's pid \
            namespace. A failure prints the errno name first and exits 1 (2 when contidd \
            cannot be reached).
            """)

    @OptionGroup var daemon: DaemonSocketOptions
    @Argument(help: "The process to register (normally a container's first process, before it forks).")
    var pid: Int32
    // Taken verbatim even when it starts with '-': `contid set PID -1` is an attempt to
    // unset, which contidd refuses with EINVAL and records, as the kernel interface did.
    @Argument(parsing: .allUnrecognized,
              help: "The container ID: a UUID, 32 hex digits, or a decimal number below 2^64-1.")
    var id: [String] = []
    @Flag(name: .long, help: "Create a new container only: a live ID is refused with ENOTUNIQ whoever owns it.")
    var new = false
    @Option(name: .customLong("label"),
            help: ArgumentHelp("A label of the container, key=value (repeatable): runtime, id, bundle, name, image, pod, pod-uid are the well-known keys.",
                               valueName: "key=value"))
    var labels: [String] = []

    func validate() throws {
        guard id.count == 1 else { throw ValidationError("give exactly one ID after the PID") }
    }

    /// `k=v` split at its first `=` (a second one is refused by the label rules).
    static func pairs(_ labels: [String]) throws(RegistrationFailure) -> [(String, String)] {
        try labels.map { (text: String) throws(RegistrationFailure) -> (String, String) in
            guard let eq = text.firstIndex(of: "=") else {
                throw RegistrationFailure(errno: "EINVAL", message: "label \"\(text.prefix(64))\" is not key=value", refused: true)
            }
            return (String(text[..<eq]), String(text[text.index(after: eq)...]))
        }
    }

    func run() throws {
        let client = daemon.client
        _ = try answered { () throws(RegistrationFailure) in
            try client.set(pid: pid, id: id[0], new: new, labels: try Self.pairs(labels), forParent: true)
        }
    }
}

struct GetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Print a process's container ID chain (innermost first, e.g. 4,^2,^1), or -1.")

    @OptionGroup var daemon: DaemonSocketOptions
    @Argument(help: "The process to ask about.")
    var pid: Int32

    func run() throws {
        let client = daemon.client
        print(try answered { () throws(RegistrationFailure) in try client.get(pid: pid) })
    }
}

struct CapContIDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capcontid",
        abstract: "Give (1) or take (0) a descendant's right to register container IDs without CAP_AUDIT_CONTROL.",
        discussion: "Like set, acts for the process that ran contid; the attempt is recorded as SET_CAPCONTID.")

    @OptionGroup var daemon: DaemonSocketOptions
    @Argument(help: "The descendant process.")
    var pid: Int32
    @Argument(help: "1 to delegate, 0 to revoke.")
    var value: Int

    func validate() throws {
        guard value == 0 || value == 1 else { throw ValidationError("the value is 0 or 1") }
    }

    func run() throws {
        let client = daemon.client
        _ = try answered { () throws(RegistrationFailure) in try client.capContID(pid: pid, value: value == 1, forParent: true) }
    }
}

struct PsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps",
        abstract: "List the processes contidd tracks with their container ID chains.")

    @OptionGroup var daemon: DaemonSocketOptions
    @Flag(name: .long, help: "Show the process tree, each process under its parent.")
    var tree = false
    @Flag(name: .long, help: "Only processes that have a container ID.")
    var contained = false

    func run() throws {
        let client = daemon.client
        var (rows, labels) = try answered { () throws(RegistrationFailure) in try client.ps() }
        if contained { rows = rows.filter { $0.chain != "-1" } }
        if tree {
            for line in ProcessRow.tree(rows, labels: labels) { print(line) }
        } else {
            // LABELS: those of the process's innermost container.
            print(pad("PID", 8) + pad("PPID", 8) + pad("CONTID", 24) + pad("COMM", 17) + "LABELS")
            for r in rows {
                let own = r.innermostID.flatMap { labels[$0] }.map(\.encoded) ?? ""
                print(pad("\(r.pid)", 8) + pad("\(r.ppid)", 8) + pad(r.chain + (r.capContID ? "*" : ""), 24)
                      + (own.isEmpty ? r.comm : pad(r.comm, 17) + own))
            }
        }
    }

    private func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count) }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Print contidd's counters: processes, containers, events, and every kind of loss.")

    @OptionGroup var daemon: DaemonSocketOptions

    func run() throws {
        let client = daemon.client
        print(try answered { () throws(RegistrationFailure) in try client.status() })
    }
}
