// Why a registration or capcontid request failed: the errno of the proposal's
// check ladder (upstream §3, v10/v11 values) and a reason for people.

/// The errnos a registration can fail with, with their Linux numbers.
public enum ContainerErrno: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case EPERM = 1
    case ESRCH = 3
    case E2BIG = 7
    case EBUSY = 16
    case EEXIST = 17
    case EXDEV = 18
    case EINVAL = 22
    case ENOTUNIQ = 76

    /// The C name, as records (`errno=EEXIST`) and the CLI print it.
    public var name: String {
        switch self {
        case .EPERM: "EPERM"
        case .ESRCH: "ESRCH"
        case .E2BIG: "E2BIG"
        case .EBUSY: "EBUSY"
        case .EEXIST: "EEXIST"
        case .EXDEV: "EXDEV"
        case .EINVAL: "EINVAL"
        case .ENOTUNIQ: "ENOTUNIQ"
        }
    }

    public var description: String { name }
}

/// A failed request: `EBUSY: process 812 has 1 child; register a container's first process before it forks`.
public struct ContainerFailure: Error, Hashable, Sendable, CustomStringConvertible {
    public var errno: ContainerErrno
    public var reason: String

    public init(_ errno: ContainerErrno, _ reason: String) {
        self.errno = errno
        self.reason = reason
    }

    public var description: String { "\(errno.name): \(reason)" }
}
