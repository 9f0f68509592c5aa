// Container objects (upstream `audit_contobj`): one live object per ID, each
// holding its owner, its parent (nesting), its labels and how many live members
// and nested objects keep it alive.

/// Who may inject into a container (SPEC §4): the orchestrator that created it,
/// (uid, executable, its own chain), alive or not. Its own chain is the chain of
/// the object's parent (the writer's container at creation), so it is not kept here.
struct Orchestrator: Hashable {
    var uid: UInt32
    var exe: [UInt8]
}

struct ContainerObject {
    var id: ContainerID
    /// The writer that created it (named in messages; the records' `pid=`).
    var owner: ProcessKey
    /// The orchestrator that created it; nil for an object restored from a snapshot
    /// that did not record it, which only the owner process itself may inject into.
    var orchestrator: Orchestrator?
    /// What its orchestrator said about it at registration (CONTAINER_INFO).
    var labels = ContainerLabels()
    /// Its first process, the registration's target (CONTAINER_INFO's opid).
    var firstPID: Int32 = 0
    /// The pid namespace whose pid 1 is its first process (0: it has none of its own):
    /// a process that enters it joins the container (SPEC §4).
    var pidNamespace: UInt64 = 0
    /// Index of the parent object (the owner's own container at creation), or -1.
    var parent: Int32
    /// Live processes whose innermost container this is.
    var members: Int32
    /// Live objects whose parent this is: a parent lives while a nested child does.
    var nested: Int32
    var creation: UInt64
    var chain: ContainerChain
    /// The chain as printed (`4,^2,^1`), formatted once: annotation is the hot path.
    var chainBytes: [UInt8]
    var isLive: Bool
}

struct ContainerObjectTable {
    private(set) var objects: [ContainerObject] = []
    private var free: [Int32] = []
    private(set) var indexOf: [ContainerID: Int32] = [:]
    var nextCreation: UInt64 = 1

    var liveCount: Int { indexOf.count }

    @inline(__always)
    subscript(index: Int32) -> ContainerObject {
        get { objects[Int(index)] }
        _modify { yield &objects[Int(index)] }
    }

    func index(of id: ContainerID) -> Int32? { indexOf[id] }

    /// A new object with no members; its parent gains a nested reference.
    mutating func create(
        id: ContainerID, owner: ProcessKey, orchestrator: Orchestrator?, parent: Int32, labels: ContainerLabels = ContainerLabels(),
        creation: UInt64? = nil
    ) -> Int32 {
        var chain = ContainerChain([id])
        if parent >= 0 {
            chain.ids.append(contentsOf: objects[Int(parent)].chain.ids)
            objects[Int(parent)].nested += 1
        }
        let order = creation ?? nextCreation
        nextCreation = max(nextCreation, order + 1)
        let object = ContainerObject(
            id: id, owner: owner, orchestrator: orchestrator, labels: labels, parent: parent, members: 0, nested: 0,
            creation: order, chain: chain, chainBytes: chain.bytes, isLive: true)
        let index: Int32
        if let f = free.popLast() {
            index = f
            objects[Int(f)] = object
        } else {
            index = Int32(objects.count)
            objects.append(object)
        }
        indexOf[id] = index
        return index
    }

    /// Places an object at a given index (restoring a snapshot).
    mutating func place(_ object: ContainerObject, at index: Int32) {
        while objects.count <= Int(index) {
            free.append(Int32(objects.count))
            objects.append(
                ContainerObject(
                    id: 0, owner: ProcessKey(pid: 0, start: 0), orchestrator: nil, parent: -1, members: 0, nested: 0,
                    creation: 0, chain: .unset, chainBytes: [], isLive: false))
        }
        free.removeAll { $0 == index }
        objects[Int(index)] = object
        indexOf[object.id] = index
        nextCreation = max(nextCreation, object.creation + 1)
    }

    /// Releases one member (or, for `nested`, one nested object) of `index`; appends
    /// each object that no live task's chain contains any more, innermost first.
    mutating func release(_ index: Int32, nested isNested: Bool = false, dropped: inout [ContainerObject]) {
        var i = index
        var fromNested = isNested
        while i >= 0 {
            if fromNested { objects[Int(i)].nested -= 1 } else { objects[Int(i)].members -= 1 }
            let o = objects[Int(i)]
            guard o.members <= 0, o.nested <= 0 else { return }
            dropped.append(o)
            indexOf[o.id] = nil
            objects[Int(i)].isLive = false
            objects[Int(i)].chainBytes = []
            free.append(i)
            i = o.parent
            fromNested = true
        }
    }
}
