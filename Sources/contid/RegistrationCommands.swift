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
    /// The C name of the errors a connect() to contidd's socket can give.
    static func errnoName(_ e: Errno) -> String {
        switch e {
        case .noSuchFileOrDirectory: return "ENOENT"
        case .connectionRefused: return "ECONNREFUSED"
        case .permissionDenied: return "EACCES"
        case .notDirectory: return "ENOTDIR"
        default: return "E\(e.rawValue)"
        }
    }

    @Option(name: .customLong("run-dir"),
            help: "contidd's run directory, holding contid.sock (default: $CONTID_RUN_DIR, else /run/contid).")
    var runDir: String?

    var socketPath: String {
        let dir = runDir ?? getenv("CONTID_RUN_DIR").map { String(cString: $0) } ?? "/run/contid"
        return dir + "/contid.sock"
    }

    /// Sends one request and returns the replies up to and including the closing ok/err.
    func exchange(_ request: RegistrationRequest) throws -> [RegistrationReply] {
        let path = socketPath
        let connection: UnixConnection
        do { connection = try UnixConnection.connect(path: path) } catch {
            // The errno name first, as for every failure of set/get/capcontid (SPEC §11).
            let name = (error as? LinuxAuditError)?.errno.map { Self.errnoName($0) } ?? "ECONNREFUSED"
            printError("\(name): cannot reach contidd at \(path): \(error)")
            throw ExitCode(2)
        }
        do {
            try connection.send(request.encoded())
            var replies: [RegistrationReply] = []
            while let message = try connection.receive(maxLength: 1 << 16, timeout: .seconds(30)) {
                let reply = try RegistrationReply.decode(message)
                replies.append(reply)
                if case .row = reply { continue }
                return replies
            }
            printError("contid: contidd closed the connection without an answer")
            throw ExitCode(2)
        } catch let e as ExitCode {
            throw e
        } catch {
            printError("contid: talking to contidd at \(path): \(error)")
            throw ExitCode(2)
        }
    }
}

func printError(_ line: String) {
    var s = line + "\n"
    s.withUTF8 { p in _ = write(2, p.baseAddress, p.count) }
}

/// Prints `ERRNO: reason` and fails, or returns the ok text.
func expectOK(_ replies: [RegistrationReply]) throws -> String {
    switch replies.last {
    case .ok(let text)?: return text
    case let .error(errno, message)?:
        printError("\(errno): \(message)")
        throw ExitCode(1)
    default:
        printError("contid: unexpected answer from contidd")
        throw ExitCode(2)
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
            yet unless this is nesting (EEXIST), and that a live ID belongs to this writer \
            (ENOTUNIQ). Run it from the shell that started PID: in out=$(contid set ...) the writer \
            is the $(...) subshell, of which PID is not a descendant (EXDEV). Every attempt is \
            recorded as a CONTAINER_OP record (refusals beyond 10 a second per user are counted \
            in one set-suppressed record instead). A failure prints the errno name first and \
            exits 1.
            """)

    @OptionGroup var daemon: DaemonSocketOptions
    @Argument(help: "The process to register (normally a container's first process, before it forks).")
    var pid: Int32
    // Taken verbatim even when it starts with '-': `contid set PID -1` is an attempt to
    // unset, which contidd refuses with EINVAL and records, as the kernel interface did.
    @Argument(parsing: .allUnrecognized,
              help: "The container ID: a UUID, 32 hex digits, or a decimal number below 2^64-1.")
    var id: [String] = []

    func validate() throws {
        guard id.count == 1 else { throw ValidationError("give exactly one ID after the PID") }
    }

    func run() throws {
        _ = try expectOK(try daemon.exchange(.set(pid: pid, id: id[0], forParent: true)))
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
        print(try expectOK(try daemon.exchange(.get(pid: pid))))
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
        _ = try expectOK(try daemon.exchange(.capContID(pid: pid, value: value == 1, forParent: true)))
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
        let replies = try daemon.exchange(.ps)
        _ = try expectOK(replies)
        var rows: [ProcessRow] = []
        for r in replies { if case .row(let row) = r { rows.append(row) } }
        if contained { rows = rows.filter { $0.chain != "-1" } }
        if tree {
            for line in ProcessRow.tree(rows) { print(line) }
        } else {
            print(pad("PID", 8) + pad("PPID", 8) + pad("CONTID", 24) + "COMM")
            for r in rows { print(pad("\(r.pid)", 8) + pad("\(r.ppid)", 8) + pad(r.chain + (r.capContID ? "*" : ""), 24) + r.comm) }
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
        print(try expectOK(try daemon.exchange(.status)))
    }
}
