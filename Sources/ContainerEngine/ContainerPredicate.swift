// The `contid` rule field (SPEC §7, upstream §9): `=`/`!=` against any element
// of a task's chain, or against `unset`.

/// One `contid` comparison of a rule: `contid=123456`, `contid!=unset`.
public struct ContainerPredicate: Hashable, Sendable, CustomStringConvertible {
    public enum Operator: String, Hashable, Sendable {
        case equal = "="
        case notEqual = "!="
    }

    public var op: Operator
    /// nil compares against unset.
    public var value: ContainerID?

    public init(_ op: Operator, _ value: ContainerID?) {
        self.op = op
        self.value = value
    }

    /// Parses the value of a rule field as auditctl does: an ID in any accepted
    /// form, or `unset` / `-1` / 18446744073709551615 for unset.
    public init(_ op: Operator, parsing text: some StringProtocol) throws(ContainerFailure) {
        self.init(op, try ContainerID.parseRequest(text))
    }

    /// `=X` matches when any element of the chain is X (nested containers match
    /// their ancestors' IDs); `!=X` when none is. `=unset` matches an unset task.
    @inline(__always)
    public func matches(_ chain: ContainerChain) -> Bool {
        let hit: Bool
        if let value { hit = chain.contains(value) } else { hit = chain.isUnset }
        return op == .equal ? hit : !hit
    }

    /// `contid=123456`, `contid!=unset`, as `auditctl -l` lists it.
    public var description: String { "contid\(op.rawValue)\(value.map { "\($0)" } ?? "unset")" }
}
