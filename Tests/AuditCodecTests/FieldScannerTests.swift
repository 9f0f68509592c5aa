import TestSupport
import Testing
@testable import AuditCodec

/// The one field scanner and the one table of record-type classes.
@Suite struct FieldScannerTests {
    func scan<R>(_ body: String, _ f: (UnsafeRawBufferPointer) -> R) -> R {
        Array(body.utf8).withUnsafeBytes(f)
    }

    @Test func integersAreReadTokenByTokenNotInsideQuotedValues() {
        let body = " arch=c000003e comm=\"x pid=1\" ppid=77 pid=4242 exit=-13 big=99999999999999999999"
        #expect(scan(body) { FieldScanner.integer("pid", in: $0) } == 4242)
        #expect(scan(body) { FieldScanner.integer("ppid", in: $0) } == 77)
        #expect(scan(body) { FieldScanner.integer("exit", in: $0) } == -13)
        #expect(scan(body) { FieldScanner.integer("big", in: $0) } == nil)
        #expect(scan(body) { FieldScanner.integer("arch", in: $0) } == nil)
        #expect(scan(body) { FieldScanner.integer("uid", in: $0) } == nil)
    }

    @Test func valueBoundsIncludeTheQuotes() {
        let body = " comm=\"a b\" key=\"contid-track\" msg='op=set res=1'"
        #expect(scan(body) { FieldScanner.valueRange(of: "comm", in: $0) } == 6..<11)
        #expect(scan(body) { FieldScanner.valueRange(of: "msg", in: $0) } == 35..<49)
        let value = Array("\"contid-track\"".utf8)
        #expect(scan(body) { b in value.withUnsafeBytes { FieldScanner.has("key", value: $0, in: b) } })
        #expect(!scan(body) { b in value.withUnsafeBytes { FieldScanner.has("comm", value: $0, in: b) } })
    }

    @Test func containsIsAByteSearch() {
        #expect(scan(" a=1 key=\"k\"") { FieldScanner.contains(" key=\"k\"", in: $0) })
        #expect(!scan(" a=1 key=\"kk\"") { FieldScanner.contains(Array(" key=\"k\" ".utf8), in: $0) })
        #expect(scan(" pid=3") { b in Array(" pid=".utf8).withUnsafeBytes { FieldScanner.search($0, in: b) } } == 0)
    }

    @Test func recordTypeClassesComeFromOneTable() {
        func t(_ v: UInt16) -> AuditRecordType { AuditRecordType(rawValue: v) }
        #expect([1005, 1100, 1123, 1199, 2100, 2899].allSatisfy { t($0).isUserMessage })
        #expect(![1006, 1200, 1300, 2900, 2901, 2908, 2999].contains { t($0).isUserMessage })
        #expect([2900, 2902, 2903, 2907, 2908].allSatisfy { t($0).isContidOwnRecord })
        #expect(![2901, 2909, 1005].contains { t($0).isContidOwnRecord })
        #expect([1200, 1299].allSatisfy { t($0).isDaemonRecord && t($0).isStandalone })
        #expect(!t(2901).isStandalone && t(2900).isStandalone && !t(1300).isStandalone)
        #expect(AuditRecordType(name: "CONTAINER_INFO") == .containerInfo)
        #expect(AuditRecordType.containerInfo.name == "CONTAINER_INFO")
    }

    @Test func trackedSyscallNumbersComeFromTheNameTables() {
        #expect(TrackedSyscall.allCases.map { AuditArch.x86_64.number(of: $0) } == [56, 57, 58, 435, 59, 322, 231, 272, 308])
        #expect(TrackedSyscall.allCases.map { AuditArch.i386.number(of: $0) } == [120, 2, 190, 435, 11, 358, 252, 310, 346])
        #expect(TrackedSyscall.allCases.map { AuditArch.aarch64.number(of: $0) } == [220, nil, nil, 435, 221, 281, 94, 97, 268])
        #expect(AuditArch.x86_64.tracked(231) == .exitGroup)
        #expect(AuditArch.x86_64.tracked(257) == nil)
        #expect(AuditArch.x86_64.syscallNumber("openat") == 257)
    }
}

@Suite struct FieldScannerAgreementTests {
    /// The byte search and the token walk find the same field in every record of the corpus.
    @Test(arguments: Corpus.logFiles)
    func theSearchAgreesWithTheTokenWalk(path: String) throws {
        let names = ["pid", "ppid", "uid", "key", "comm", "exe", "msg", "res", "opid", "a0", "a1", "syscall", "arch",
                     "name", "item", "contid", "record", "op", "saddr", "cwd", "ses", "argc", "x"]
        var checked = 0
        for line in try Corpus.lines(path) where !line.isEmpty && line.first != UInt8(ascii: "#") {
            guard let r = try? AuditRecord(parsing: line) else { continue }
            r.withBody { body in
                for n in names {
                    var name = n
                    name.withUTF8 { nb in
                        let raw = UnsafeRawBufferPointer(nb)
                        #expect(FieldScanner.valueRange(of: raw, in: body) == FieldScanner.walk(raw, in: body), "\(path): \(n)")
                    }
                }
            }
            checked += 1
        }
        #expect(checked == CorpusTests.expected[path]?.0)
    }

    @Test func aMatchAfterAQuoteIsDecidedByTheWalk() {
        func range(_ body: String, _ name: StaticString) -> Range<Int>? {
            Array(body.utf8).withUnsafeBytes { FieldScanner.valueRange(of: name, in: $0) }
        }
        #expect(range(" comm=\"a pid=1\" pid=22", "pid") == 20..<22)
        #expect(range(" msg='x pid=1'", "pid") == nil)
        #expect(range("pid=3 xpid=4", "pid") == 4..<5)
        #expect(range(" xpid=4 pid=5", "pid") == 12..<13)
        #expect(range(" a=b=c pid=\"q r\"x y", "pid") == 11..<17)
    }
}

@Suite struct ArchFieldTests {
    @Test func archFieldsParseAsHexOfUpTo32Bits() {
        #expect(AuditArch(field: "c000003e") == .x86_64)
        #expect(AuditArch(field: "C000003E") == .x86_64)
        #expect(AuditArch(field: "40000003") == .i386)
        #expect(AuditArch(field: "0c00000b7") == .aarch64)
        #expect(AuditArch(field: "") == nil)
        #expect(AuditArch(field: "c00003x") == nil)
        #expect(AuditArch(field: "1c000003e") == nil)
    }
}

@Suite struct SyscallAccessorTests {
    @Test func argumentsAndSuccessAreReadFromTheBytes() throws {
        let r = try AuditRecord(parsing: "type=SYSCALL msg=audit(1700000000.000:1): arch=c000003e syscall=56 success=no exit=4242 a0=1200011 a1=0 a2=FFFFFFFFFFFFFFFF a3=7ffd88bf68c0 items=0 ppid=1 pid=2")
        #expect(r.argument(0) == 0x1200011)
        #expect(r.argument(1) == 0)
        #expect(r.argument(2) == UInt64.max)
        #expect(r.argument(3) == 0x7ffd88bf68c0)
        #expect(r.argument(4) == nil)
        #expect(r.success == false)
        let y = try AuditRecord(parsing: "type=SYSCALL msg=audit(1700000000.000:2): success=yes a0=xyz")
        #expect(y.success == true)
        #expect(y.argument(0) == nil)
        let u = try AuditRecord(parsing: "type=USER msg=audit(1700000000.000:3): pid=1 msg='success=yes a1=ff'")
        #expect(u.success == true)
        #expect(u.argument(1) == 0xff)
    }
}

@Suite struct StampFastPathTests {
    /// The kernel-form fast path reads every stamp of the corpus as the general parser does.
    @Test(arguments: Corpus.logFiles)
    func theFastStampParserAgreesWithTheGeneralOne(path: String) throws {
        var fast = 0, kernelForm = 0
        for line in try Corpus.lines(path) where !line.isEmpty && line.first != UInt8(ascii: "#") {
            guard let open = line.firstIndex(of: UInt8(ascii: "(")) else { continue }
            line.withUnsafeBytes { raw in
                let base = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
                var p1 = open + 1, p2 = open + 1
                let general = RecordScanner.parseStamp(base, &p1, raw.count)
                if case .success(let g) = general, g.colon { kernelForm += 1 }
                guard let quick = RecordScanner.parseKernelStamp(base, &p2, raw.count) else { return }
                fast += 1
                guard case .success(let g) = general else { Issue.record("\(path): fast path took a bad stamp"); return }
                #expect(g.time == quick.time && g.serial == quick.serial && g.colon == quick.colon && p1 == p2)
            }
        }
        #expect(fast == kernelForm)
    }

    @Test func theMsgAuditWordsSpellTheLiteral() {
        #expect(Array(" msg=aud".utf8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } == RecordScanner.msgAudit8)
        #expect(Array("dit(".utf8).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } == RecordScanner.msgAudit4)
    }

    @Test func eightDigitsAtOnce() {
        func eight(_ s: String) -> UInt64? { Array(s.utf8).withUnsafeBufferPointer { RecordScanner.eightDigits($0.baseAddress!) } }
        #expect(eight("17959291") == 17_959_291)
        #expect(eight("00000000") == 0)
        #expect(eight("99999999") == 99_999_999)
        #expect(eight("1795929.") == nil)
        #expect(eight("1795:291") == nil)
        #expect(eight("/7959291") == nil)
    }
}

/// SyscallFacts (offline attribution's one walk over a SYSCALL record) reads what the
/// record's own accessors read, field by field.
@Suite struct SyscallFactsTests {
    @Test(arguments: Corpus.logFiles)
    func factsAgreeWithTheRecordAccessorsOnEverySyscallRecord(path: String) throws {
        var checked = 0
        for line in try Corpus.lines(path) where !line.isEmpty && line.first != UInt8(ascii: "#") {
            guard let r = try? AuditRecord(parsing: line), r.type == .syscall else { continue }
            let f = SyscallFacts(r)
            let arch = r["arch"].flatMap { AuditArch(field: $0) }
            #expect(f == SyscallFacts(arch: arch, syscall: r.syscall, success: r.success, exit: r.exit,
                                      a0: r.argument(0), ppid: r.ppid, pid: r.pid), "\(path): \(r.text.count) bytes")
            checked += 1
        }
        // Every SYSCALL line of the file took part (counted by its text, independently of the parser).
        let syscallLines = try Corpus.lines(path).filter { line in
            String(decoding: line, as: UTF8.self).contains("type=SYSCALL msg=audit(")
        }.count
        #expect(checked == syscallLines, "\(path)")
    }

    @Test func aQuotedValueNeverPassesForAField() {
        let body = Array(" arch=c000003e syscall=56 success=yes exit=4242 a0=1200011 comm=\"x pid=1 ppid=9\" ppid=77 pid=4200".utf8)
        let f = body.withUnsafeBytes { SyscallFacts(body: $0) }
        #expect(f == SyscallFacts(arch: .x86_64, syscall: 56, success: true, exit: 4242, a0: 0x1200011, ppid: 77, pid: 4200))
    }

    @Test func theFirstOfARepeatedNameCountsAndAbsentOnesAreNil() {
        let body = Array("pid=5 pid=6 success=no exit=-2 junk a0=zz".utf8)
        let f = body.withUnsafeBytes { SyscallFacts(body: $0) }
        #expect(f == SyscallFacts(arch: nil, syscall: nil, success: false, exit: -2, a0: nil, ppid: nil, pid: 5))
    }
}
