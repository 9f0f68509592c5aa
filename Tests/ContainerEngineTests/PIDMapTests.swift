import Testing
import PropertyBased
@testable import ContainerEngine

/// The pid map behaves as a Dictionary under any mix of inserts, updates and removals.
@Suite struct PIDMapTests {
    @Test func behavesLikeADictionary() async {
        // Each step: op = v % 3 (insert, remove, update), pid = v / 3 + 1 (1...300).
        await propertyCheck(count: 300, input: Gen.int(in: 0...899).array(of: 0...600)) { steps in
            let ops = steps.map { ($0 % 3, Int32($0 / 3 + 1)) }
            var map = PIDMap<Int>(filler: 0, capacity: 4)
            var model: [Int32: Int] = [:]
            for (k, (o, p)) in ops.enumerated() {
                switch o {
                case 0: map[p] = k; model[p] = k
                case 1: #expect(map.removeValue(forKey: p) == model.removeValue(forKey: p))
                default: map[p]? += 1; model[p]? += 1
                }
            }
            #expect(map.count == model.count)
            for (p, v) in model { #expect(map[p] == v) }
            for p in Int32(1)...300 where model[p] == nil { #expect(map[p] == nil) }
            #expect(Dictionary(uniqueKeysWithValues: map.map { ($0.key, $0.value) }) == model)
        }
    }
}
