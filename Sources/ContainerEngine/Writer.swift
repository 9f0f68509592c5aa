import AuditCodec

// The process that asks to set a container ID or capcontid (SPEC §4 "Who the
// writer is"). Every field comes from the kernel, never from the request.

public struct Writer: Sendable, Hashable {
    public var process: ProcessKey
    /// CAP_AUDIT_CONTROL in the initial user namespace, as the caller verified it.
    public var hasAuditControl: Bool
    public var uid: UInt32
    public var auid: UInt32
    public var ses: UInt32
    public var comm: [UInt8]
    public var exe: [UInt8]
    /// The requesting `contid` client when it acts for its parent: not counted as
    /// a child of the target in the EBUSY check, so a self-set reaches EXDEV.
    public var excludingChild: Int32?
    /// Why the process that sent the request may not act for this writer (it acts for
    /// its parent from another container, or its credentials changed since it
    /// connected), when the caller found it so: refused with EPERM at check 2.
    public var requesterRefusal: String?

    public init(
        process: ProcessKey, hasAuditControl: Bool, uid: UInt32 = 0, auid: UInt32 = 4_294_967_295,
        ses: UInt32 = 4_294_967_295, comm: String, exe: String, excludingChild: Int32? = nil
    ) {
        self.process = process
        self.hasAuditControl = hasAuditControl
        self.uid = uid
        self.auid = auid
        self.ses = ses
        self.comm = Array(comm.utf8)
        self.exe = Array(exe.utf8)
        self.excludingChild = excludingChild
    }

    /// The EXDEV reason for a target outside the writer's descendants, naming the
    /// writer (pid, comm). When the request came through `contid` acting for its
    /// parent, says so: `out=$(contid set ...)` makes a subshell the writer, and the
    /// target, a child of the shell, is not the subshell's descendant (SPEC §4).
    public func notAncestorReason(of target: Int32, command: String) -> String {
        // comm is the writer's to choose: no control bytes in a reply a terminal prints.
        let name = String(decoding: comm.map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: "?") : $0 }, as: UTF8.self)
        let reason = "process \(target) is not a descendant of the writer, process \(process.pid) (\(name))"
        guard excludingChild != nil else { return reason }
        return reason
            + "; contid acts for the process that runs it, and in $(...) that is a subshell: run contid \(command) directly from the shell that started the target"
    }
}

extension RecordText {
    /// Ends a CONTAINER_OP or SET_CAPCONTID record of an attempt: the writer's
    /// `pid= uid= auid= ses= comm= exe=`, then `res=1`, or `res=0 errno=NAME`.
    consuming func attempt(by writer: Writer, failing errno: ContainerErrno?, as type: AuditRecordType)
        -> ContainerRecord
    {
        field("pid", writer.process.pid)
        field("uid", writer.uid)
        field("auid", writer.auid)
        field("ses", writer.ses)
        field("comm", untrusted: writer.comm)
        field("exe", untrusted: writer.exe)
        field("res", errno == nil ? 1 : 0)
        if let errno { field("errno", raw: errno.name) }
        return record(type)
    }
}
