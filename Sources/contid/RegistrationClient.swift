import AuditPipeline
import ContainerEngine
import LinuxAudit
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

// The client side of contidd's registration socket (SPEC §4, §9), for `contid
// set/get/capcontid/ps/status` and `contid oci-hook`. The target is named by a
// pidfd opened here, in this process's pid namespace, and passed with SCM_RIGHTS,
// so a runtime inside a pid namespace registers the right process and the pid
// cannot be reused between this call and contidd's checks.

/// A failed request: `EBUSY: process 812 has 1 child; ...` as `contid set` prints it.
struct RegistrationFailure: Error, CustomStringConvertible {
    /// The errno name: contidd's refusal (EBUSY, ENOTUNIQ, ...), or the transport's
    /// (ENOENT/ECONNREFUSED when contidd is not running).
    var errno: String
    var message: String
    /// True when contidd answered with a refusal; false when it could not be asked
    /// (not running, the connection broke, an answer that does not parse).
    var refused: Bool

    var description: String { "\(errno): \(message)" }
    /// `contid`'s exit status for it: 1 for a refusal, 2 for a failure to ask.
    var exitStatus: Int32 { refused ? 1 : 2 }
}

struct RegistrationClient {
    /// contidd's run directory, holding contid.sock.
    let runDir: String

    /// `runDir` nil: `$CONTID_RUN_DIR`, else /run/contid.
    init(runDir: String? = nil) {
        self.runDir = runDir ?? getenv("CONTID_RUN_DIR").map { String(cString: $0) } ?? "/run/contid"
    }

    var socketPath: String { runDir + "/contid.sock" }

    /// Registers container ID `id` (text as the user gave it; contidd parses it) for
    /// `pid` (in this process's pid namespace). `new`: refuse a live ID (ENOTUNIQ)
    /// instead of joining it. `forParent`: act for this process's parent, as a shell
    /// writing /proc/PID/audit_containerid would (the hook acts for the runtime).
    /// Returns the chain printed by contidd (`7`, `4,^2,^1`).
    func set(pid: Int32, id: String, new: Bool, labels: [(String, String)], forParent: Bool)
        throws(RegistrationFailure) -> String
    {
        let validated: ContainerLabels
        do { validated = try ContainerLabels(validating: labels) } catch {
            throw RegistrationFailure(errno: error.errno.name, message: error.reason, refused: true)
        }
        let request = RegistrationRequest.set(pid: pid, id: id, forParent: forParent, new: new, labels: validated)
        return try expectOK(exchange(request, target: pid))
    }

    /// The chain of `pid`, or `-1`.
    func get(pid: Int32) throws(RegistrationFailure) -> String {
        try expectOK(exchange(.get(pid: pid), target: pid))
    }

    func capContID(pid: Int32, value: Bool, forParent: Bool) throws(RegistrationFailure) -> String {
        try expectOK(exchange(.capContID(pid: pid, value: value, forParent: forParent), target: pid))
    }

    /// Every tracked process, and the labels of each live container by its ID.
    func ps() throws(RegistrationFailure) -> (rows: [ProcessRow], labels: [String: ContainerLabels]) {
        let replies = try exchange(.ps, target: nil)
        _ = try expectOK(replies)
        var rows: [ProcessRow] = []
        var labels: [String: ContainerLabels] = [:]
        for r in replies {
            switch r {
            case .row(let row): rows.append(row)
            case let .info(id, l): labels[id] = l
            default: break
            }
        }
        return (rows, labels)
    }

    func status() throws(RegistrationFailure) -> String {
        try expectOK(exchange(.status, target: nil))
    }

    /// Sends one request (with a pidfd of `target` attached) and returns the replies up
    /// to and including the closing ok/err.
    func exchange(_ request: RegistrationRequest, target: Int32?) throws(RegistrationFailure) -> [RegistrationReply] {
        // Opened before connecting: a pid that names nothing here names nothing to ask about.
        var pin: PinnedProcess?
        if let target {
            do { pin = try PinnedProcess(pid: target) } catch {
                // A thread's id names no process (pidfd_open: ENOENT): say whose thread it is.
                if let status = try? ProcFS().status(pid: target), status.tgid != target {
                    throw RegistrationFailure(
                        errno: "ESRCH",
                        message: "\(target) is a thread of process \(status.tgid), not a process; an ID belongs to a whole process (its thread group): name process \(status.tgid)",
                        refused: true)
                }
                if case .syscall(_, let e)? = error as? LinuxAuditError, e == .noSuchProcess {
                    throw RegistrationFailure(errno: "ESRCH", message: "no process \(target)", refused: true)
                }
                throw RegistrationFailure(errno: Self.errnoName(error), message: "pidfd_open(\(target)): \(error)", refused: false)
            }
        }
        let path = socketPath
        let connection: UnixConnection
        do { connection = try UnixConnection.connect(path: path) } catch {
            throw RegistrationFailure(errno: Self.errnoName(error),
                                      message: "cannot reach contidd at \(path) (is contidd running?): \(error)", refused: false)
        }
        do {
            if let pin {
                try connection.send(request.encoded(), attaching: pin.descriptor)
            } else {
                try connection.send(request.encoded())
            }
            var replies: [RegistrationReply] = []
            while let message = try connection.receive(maxLength: 1 << 16, timeout: .seconds(30)) {
                let reply = try RegistrationReply.decode(message)
                replies.append(reply)
                switch reply {
                case .row, .info: continue
                case .ok, .error: return replies
                }
            }
            throw RegistrationFailure(errno: "ECONNRESET", message: "contidd at \(path) closed the connection without an answer",
                                      refused: false)
        } catch let failure as RegistrationFailure {
            throw failure
        } catch let e as RegistrationProtocolError {
            throw RegistrationFailure(errno: "EPROTO", message: "contidd at \(path) answered what contid cannot read: \(e.reason)",
                                      refused: false)
        } catch {
            throw RegistrationFailure(errno: Self.errnoName(error), message: "talking to contidd at \(path): \(error)", refused: false)
        }
    }

    /// The ok text of the last reply, or the refusal it carries.
    private func expectOK(_ replies: [RegistrationReply]) throws(RegistrationFailure) -> String {
        switch replies.last {
        case .ok(let text)?: return text
        case let .error(errno, message)?: throw RegistrationFailure(errno: errno, message: message, refused: true)
        default: throw RegistrationFailure(errno: "EPROTO", message: "unexpected answer from contidd", refused: false)
        }
    }

    /// The C name of a transport error's errno (`ENOENT` for a missing socket).
    static func errnoName(_ error: any Error) -> String {
        guard let e = (error as? LinuxAuditError)?.errno else { return "EIO" }
        switch e {
        case .noSuchFileOrDirectory: return "ENOENT"
        case .connectionRefused: return "ECONNREFUSED"
        case .permissionDenied: return "EACCES"
        case .notDirectory: return "ENOTDIR"
        case .timedOut: return "ETIMEDOUT"
        case .brokenPipe: return "EPIPE"
        case .connectionReset: return "ECONNRESET"
        case .noSuchProcess: return "ESRCH"
        case .tooManyOpenFiles: return "EMFILE"
        case .messageTooLong: return "EMSGSIZE"
        default: return "E\(e.rawValue)"
        }
    }
}
