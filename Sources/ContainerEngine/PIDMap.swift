// A hash map from pid to a small value: open addressing with linear probing and
// Fibonacci hashing. The annotation hot path is one lookup per event; Swift's
// Dictionary hashes Int32 keys with SipHash, which costs more than the rest of
// the lookup. Values are plain structs, so empty slots just hold a filler value.

struct PIDMap<Value>: Sequence {
    private static var empty: Int32 { Int32.min }
    private var keys: [Int32]
    private var values: [Value]
    private let filler: Value
    private var shift: UInt64
    private(set) var count = 0

    init(filler: Value, capacity: Int = 1024) {
        var size = 16
        while size * 4 < capacity * 5 { size <<= 1 }
        keys = Array(repeating: Self.empty, count: size)
        values = Array(repeating: filler, count: size)
        self.filler = filler
        shift = UInt64(64 - size.trailingZeroBitCount)
    }

    @inline(__always)
    private func home(_ pid: Int32) -> Int {
        Int(truncatingIfNeeded: (UInt64(UInt32(bitPattern: pid)) &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    @inline(__always)
    private func find(_ pid: Int32) -> Int? {
        let mask = keys.count - 1
        var i = home(pid)
        return keys.withUnsafeBufferPointer { k in
            while true {
                let key = k[i]
                if key == pid { return i }
                if key == Self.empty { return nil }
                i = (i + 1) & mask
            }
        }
    }

    subscript(pid: Int32) -> Value? {
        @inline(__always) get {
            guard let i = find(pid) else { return nil }
            return values[i]
        }
        set {
            if let newValue { insert(pid, newValue) } else { _ = removeValue(forKey: pid) }
        }
        _modify {
            if let i = find(pid) {
                var v: Value? = values[i]
                yield &v
                if let v { values[i] = v } else { remove(at: i) }
            } else {
                var v: Value? = nil
                yield &v
                if let v { insert(pid, v) }
            }
        }
    }

    mutating func insert(_ pid: Int32, _ value: Value) {
        precondition(pid != Self.empty)
        if let i = find(pid) { values[i] = value; return }
        if (count + 1) * 5 > keys.count * 4 { grow() }
        let mask = keys.count - 1
        var i = home(pid)
        while keys[i] != Self.empty { i = (i + 1) & mask }
        keys[i] = pid
        values[i] = value
        count += 1
    }

    @discardableResult
    mutating func removeValue(forKey pid: Int32) -> Value? {
        guard let i = find(pid) else { return nil }
        let v = values[i]
        remove(at: i)
        return v
    }

    /// Backward-shift deletion: no tombstones, probes stay short.
    private mutating func remove(at index: Int) {
        let mask = keys.count - 1
        var hole = index
        var j = index
        while true {
            j = (j + 1) & mask
            let key = keys[j]
            if key == Self.empty { break }
            let h = home(key)
            // Move j into the hole when its home is not cyclically in (hole, j].
            let inRange = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j)
            if !inRange {
                keys[hole] = key
                values[hole] = values[j]
                hole = j
            }
        }
        keys[hole] = Self.empty
        values[hole] = filler
        count -= 1
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        let size = keys.count * 2
        keys = Array(repeating: Self.empty, count: size)
        values = Array(repeating: filler, count: size)
        shift = UInt64(64 - size.trailingZeroBitCount)
        count = 0
        for (i, k) in oldKeys.enumerated() where k != Self.empty { insert(k, oldValues[i]) }
    }

    var pids: [Int32] { keys.filter { $0 != Self.empty } }

    func makeIterator() -> AnyIterator<(key: Int32, value: Value)> {
        var i = 0
        let keys = self.keys, values = self.values
        return AnyIterator {
            while i < keys.count {
                defer { i += 1 }
                if keys[i] != Int32.min { return (keys[i], values[i]) }
            }
            return nil
        }
    }
}
