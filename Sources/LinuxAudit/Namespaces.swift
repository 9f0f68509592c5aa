#if os(Linux)
import AuditCodec
import CAuditLinux
import Glibc
import SystemPackage

/// A namespace as (nsfs device, inode). Inode numbers are reused after a namespace
/// dies, so this names a *live* namespace only.
public struct NamespaceID: Hashable, Sendable, CustomStringConvertible {
    public var device: UInt64
    public var inode: UInt64
    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    /// `major:minor` in hex, two digits each, as audit prints devices (`00:04`).
    public var deviceString: String { Self.deviceString(device) }
    public var description: String { "\(deviceString)/\(inode)" }

    static func deviceString(_ dev: UInt64) -> String {
        // glibc's gnu_dev_major/minor encoding.
        let major = ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF)
        let minor = (dev & 0xFF) | ((dev >> 12) & ~0xFF)
        func hex2(_ v: UInt64) -> String { let s = String(v, radix: 16); return s.count < 2 ? "0" + s : s }
        return "\(hex2(major)):\(hex2(minor))"
    }

    /// stat() of /proc/PID/ns/KIND (following the link; lstat would give the link's inode).
    /// A process that is gone gives `.syscall(_, .noSuchProcess)`.
    public static func of(pid: pid_t, _ kind: NamespaceKind, procRoot: String = "/proc") throws -> NamespaceID {
        let path = "\(procRoot)/\(pid)/ns/\(kind.rawValue)"
        do {
            let st = try Syscall.fileStatus(path)
            return NamespaceID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        } catch LinuxAuditError.syscall(let call, let e) where e == .noSuchFileOrDirectory {
            // The kind exists on this kernel if our own link does: then the process is gone.
            if (try? Syscall.fileStatus("\(procRoot)/self/ns/\(kind.rawValue)")) != nil {
                throw LinuxAuditError.syscall(call, .noSuchProcess)
            }
            throw LinuxAuditError.syscall(call, e)
        }
    }

    /// NS_GET_ID: the 64-bit id that is never reused (Linux >= 6.11). nil where the
    /// kernel does not know the ioctl.
    public static func uniqueID(pid: pid_t, _ kind: NamespaceKind, procRoot: String = "/proc") throws -> UInt64? {
        let path = "\(procRoot)/\(pid)/ns/\(kind.rawValue)"
        let fd = try openNamespace(path)
        defer { try? fd.close() }
        var id: UInt64 = 0
        do {
            try Syscall.ioctl(fd, CAUDIT_NS_GET_ID, into: &id, "NS_GET_ID \(path)")
        } catch LinuxAuditError.syscall(_, let e) where e == .inappropriateIOCTLForDevice || e == .invalidArgument {
            return nil
        }
        return id
    }

    static func openNamespace(_ path: String) throws -> FileDescriptor {
        do {
            return try FileDescriptor.open(path, .readOnly, options: .closeOnExec)
        } catch let e as Errno {
            throw LinuxAuditError.syscall("open(\(path))", e)
        }
    }
}

/// All namespaces of one process, sharing the nsfs device.
public struct ProcessNamespaces: Sendable, Equatable {
    /// The nsfs device (`ns_dev`).
    public var device: UInt64
    /// Inode per kind; kinds this kernel lacks are absent.
    public var inodes: [NamespaceKind: UInt64]

    public init(device: UInt64, inodes: [NamespaceKind: UInt64]) {
        self.device = device
        self.inodes = inodes
    }

    public subscript(kind: NamespaceKind) -> UInt64? { inodes[kind] }
    public var deviceString: String { NamespaceID.deviceString(device) }

    /// Reads /proc/PID/ns/* for every kind this kernel has.
    public static func read(pid: pid_t, procRoot: String = "/proc") throws -> ProcessNamespaces {
        var device: UInt64 = 0
        var inodes: [NamespaceKind: UInt64] = [:]
        for kind in NamespaceKind.allCases {
            let id: NamespaceID
            do {
                id = try NamespaceID.of(pid: pid, kind, procRoot: procRoot)
            } catch LinuxAuditError.syscall(_, let e) where e == .noSuchFileOrDirectory {
                continue  // kind not supported by this kernel (e.g. time before 5.6)
            }
            device = id.device
            inodes[kind] = id.inode
        }
        return ProcessNamespaces(device: device, inodes: inodes)
    }
}

/// An nsfs file handle (facts §6(a)): a reference to a namespace that does not keep
/// it alive, and can tell when it is gone (open_by_handle_at -> ESTALE).
public struct NamespaceHandle: Hashable, Sendable {
    public enum Liveness: Sendable, Equatable {
        case alive
        case gone
        /// The kernel cannot say (no nsfs handles, not permitted); track members instead.
        case unknown(Errno)
    }

    public var kind: NamespaceKind
    /// `struct file_handle`: u32 handle_bytes, i32 handle_type, then the handle.
    var bytes: [UInt8]

    public var handleType: Int32 { bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: Int32.self) } }
    /// The handle's bytes (on 6.18: u64 ns_id, u32 ns_type, u32 inode).
    public var handle: [UInt8] { Array(bytes[8...]) }

    static let capacity = 128

    /// A handle from its parts (as `handleType` and `handle` gave them).
    public init(kind: NamespaceKind, handleType: Int32, handle: [UInt8]) {
        var bytes = [UInt8](repeating: 0, count: 8)
        bytes.withUnsafeMutableBytes {
            $0.storeBytes(of: UInt32(handle.count), toByteOffset: 0, as: UInt32.self)
            $0.storeBytes(of: handleType, toByteOffset: 4, as: Int32.self)
        }
        self.init(kind: kind, bytes: bytes + handle)
    }

    init(kind: NamespaceKind, bytes: [UInt8]) {
        self.kind = kind
        self.bytes = bytes
    }
    /// FILEID_NSFS: the handle type of nsfs (6.18).
    public static let nsfsHandleType: Int32 = 0xF1

    /// The namespace's 64-bit id from an nsfs handle (the NS_GET_ID value), nil for
    /// another layout.
    public var nsid: UInt64? {
        guard handleType == Self.nsfsHandleType, bytes.count >= 8 + 16 else { return nil }
        return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) }
    }

    /// The namespace's inode from an nsfs handle, nil for another layout.
    public var inode: UInt64? {
        guard handleType == Self.nsfsHandleType, bytes.count >= 8 + 16 else { return nil }
        return UInt64(bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 20, as: UInt32.self) })
    }

    /// The handle of PID's namespace of `kind`; nil when nsfs does not support
    /// file handles on this kernel.
    public static func of(pid: pid_t, _ kind: NamespaceKind, procRoot: String = "/proc") throws -> NamespaceHandle? {
        let path = "\(procRoot)/\(pid)/ns/\(kind.rawValue)"
        let fd = try NamespaceID.openNamespace(path)
        defer { try? fd.close() }
        var bytes = [UInt8](repeating: 0, count: 8 + capacity)
        do {
            try bytes.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: UInt32(capacity), toByteOffset: 0, as: UInt32.self)
                try Syscall.nameToHandle(fd, raw, path)
            }
        } catch LinuxAuditError.syscall(_, let e) where e == .notSupported || e == .noFunction {
            return nil
        }
        let length = bytes.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) }
        return NamespaceHandle(kind: kind, bytes: Array(bytes[..<(8 + min(length, capacity))]))
    }

    /// Whether the namespace still exists. Opens and at once closes it, so the check
    /// itself does not keep it alive. Needs the initial user namespace.
    public func liveness(procRoot: String = "/proc") -> Liveness {
        let mount: FileDescriptor
        do {
            mount = try NamespaceID.openNamespace("\(procRoot)/self/ns/\(kind.rawValue)")
        } catch {
            return .unknown((error as? LinuxAuditError)?.errno ?? .ioError)
        }
        defer { try? mount.close() }
        return liveness(mount: mount)
    }

    /// The same with an nsfs descriptor kept open by the caller (`mountDescriptor`):
    /// one open_by_handle_at and one close per check.
    public func liveness(mount: FileDescriptor) -> Liveness {
        var copy = bytes
        do {
            let fd = try copy.withUnsafeMutableBytes { try Syscall.openByHandle(mount, $0, "nsfs handle") }
            try? fd.close()
            return .alive
        } catch LinuxAuditError.syscall(_, let e) {
            return e == .staleNFSFileHandle ? .gone : .unknown(e)
        } catch {
            return .unknown(.ioError)
        }
    }

    /// An nsfs descriptor for `liveness(mount:)`: this process's own namespace of `kind`.
    public static func mountDescriptor(_ kind: NamespaceKind, procRoot: String = "/proc") throws -> FileDescriptor {
        try NamespaceID.openNamespace("\(procRoot)/self/ns/\(kind.rawValue)")
    }
}
#endif
