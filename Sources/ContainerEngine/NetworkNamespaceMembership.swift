// Which containers have live tasks in each network namespace (upstream §8), for
// packet records that have no task: NETFILTER_PKT gets every chain, newest first.

struct NetworkNamespaceMembership {
    struct Member {
        var object: Int32
        var tasks: Int32
    }

    struct Members {
        /// Newest first: a container goes to the front when it joins the namespace.
        var members: [Member] = []
        /// The annotation text (`2,^1,3,^1`), built on first use after a change.
        var text: [UInt8]? = nil
    }

    private(set) var byNamespace: [UInt64: Members] = [:]

    mutating func join(_ netns: UInt64, object: Int32) {
        guard netns != 0, object >= 0 else { return }
        var entry = byNamespace[netns] ?? Members()
        if let i = entry.members.firstIndex(where: { $0.object == object }) {
            entry.members[i].tasks += 1
        } else {
            entry.members.insert(Member(object: object, tasks: 1), at: 0)
            entry.text = nil
        }
        byNamespace[netns] = entry
    }

    mutating func leave(_ netns: UInt64, object: Int32) {
        guard netns != 0, object >= 0, var entry = byNamespace[netns],
            let i = entry.members.firstIndex(where: { $0.object == object })
        else { return }
        entry.members[i].tasks -= 1
        if entry.members[i].tasks <= 0 {
            entry.members.remove(at: i)
            entry.text = nil
        }
        byNamespace[netns] = entry.members.isEmpty ? nil : entry
    }

    /// Restores a namespace's members in a saved order (newest first).
    mutating func setMembers(_ netns: UInt64, _ members: [Member]) {
        byNamespace[netns] = members.isEmpty ? nil : Members(members: members)
    }

    func members(of netns: UInt64) -> [Member] { byNamespace[netns]?.members ?? [] }

    /// The annotation text for `netns`, or nil when no container has a task there.
    mutating func text(_ netns: UInt64, objects: ContainerObjectTable) -> [UInt8]? {
        guard var entry = byNamespace[netns] else { return nil }
        if let t = entry.text { return t }
        var t: [UInt8] = []
        for (i, m) in entry.members.enumerated() {
            if i > 0 { t.append(UInt8(ascii: ",")) }
            t.append(contentsOf: objects[m.object].chainBytes)
        }
        entry.text = t
        byNamespace[netns] = entry
        return t
    }
}
