import TestSupport
import Testing
import Foundation
import PropertyBased
@testable import AuditCodec

/// Random bytes and mutated corpus lines never crash the codec or the assembler:
/// each line gives a record (that re-encodes to itself) or an error.
@Suite struct FuzzTests {
    /// Iterations per property; CONTID_FUZZ_COUNT raises it for a longer campaign.
    static let count: Int = {
        if let v = getenv("CONTID_FUZZ_COUNT"), let n = Int(String(cString: v)), n > 0 { return n }
        return 3000
    }()

    static let corpusLines: [[UInt8]] = {
        var all: [[UInt8]] = []
        for p in Corpus.logFiles { all += (try? Corpus.lines(p)) ?? [] }
        return all.filter { !$0.isEmpty && $0.first != UInt8(ascii: "#") }
    }()

    func check(_ line: [UInt8], _ a: EventAssembler) {
        // A line with a newline inside is two lines to every reader: cut at the first one.
        let cut = Array(line.prefix { $0 != 0x0A })
        do {
            let r = try AuditRecord(parsing: cut)
            #expect(r.encoded() == cut)
            _ = r.fields; _ = r.enrichedFields; _ = r.pid; _ = r.key; _ = r.exe
        } catch {
            #expect(!error.description.isEmpty)
        }
        _ = cut.withUnsafeBytes { a.push(line: $0) }
    }

    @Test func randomBytesNeverCrash() async {
        let a = EventAssembler { _ in }
        await propertyCheck(count: Self.count, input: Gen<UInt8>.value(in: 0...255).array(of: 0...300)) { bytes in
            check(bytes, a)
        }
        a.finish()
    }

    @Test func mutatedCorpusLinesNeverCrash() async throws {
        let lines = Self.corpusLines
        try #require(lines.count > 5000, "the shared corpus is missing (\(Corpus.root.path))")
        let a = EventAssembler { v in _ = v.makeEvent() }
        let gen = Gen.int(in: 0..<lines.count)
        await propertyCheck(count: Self.count, input: gen, Gen.int(in: 0...400), Gen<UInt8>.value(in: 0...255), Gen.int(in: 0...3)) { i, pos, byte, op in
            var l = lines[i]
            let p = min(pos, l.count)
            switch op {
            case 0: if p < l.count { l[p] = byte }      // flip
            case 1: l.insert(byte, at: p)               // insert
            case 2: if p < l.count { l.remove(at: p) }  // delete
            default: l = Array(l.prefix(p))             // truncate
            }
            check(l, a)
        }
        a.finish()
        #expect(a.counters.records > 0)
    }
}
