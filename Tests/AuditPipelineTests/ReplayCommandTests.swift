import Foundation
import Testing

/// The `contid replay` executable as a user runs it.
@Suite struct ReplayCommandTests {
    static let binary: URL = {
        // Next to the test bundle (any --scratch-path), else the default build directory.
        let here = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/")
            .deletingLastPathComponent().appendingPathComponent("contid")
        if FileManager.default.isExecutableFile(atPath: here.path) { return here }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/contid")
    }()

    func run(_ args: [String], stdin: String? = nil) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = Self.binary
        p.arguments = args
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
        try inp.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    @Test func readsStandardInputAndReportsBadLinesWithFileAndLine() throws {
        let r = try run(["replay", "--format", "summary", "-"], stdin: """
            type=SYSCALL msg=audit(1700000000.000:1): pid=1
            not a record
            type=PATH msg=audit(1700000000.000:1): item=0

            """)
        #expect(r.status == 0)
        #expect(r.out == "records=2 events=1 errors=1 lost=0\n")
        #expect(r.err == "-:2: column 1: expected \"type=NAME\" (optionally after \"node=NAME \")\n")
    }

    @Test func attributesAGeneratedTraceEndToEnd() throws {
        var g = TraceGenerator(seed: 42)
        g.run(processes: 500, containers: 10)
        let path = try temporaryFile(g.lines.joined(separator: "\n") + "\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try run(["replay", "--format", "json", path])
        #expect(r.status == 0)
        #expect(r.err.isEmpty)
        var wrong = 0
        var seen = 0
        for line in r.out.split(separator: "\n") {
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let serial = UInt32(try #require(obj["serial"] as? Int))
            seen += 1
            if (obj["contid"] as? String ?? "") != g.truth[serial] { wrong += 1 }
        }
        #expect(seen == g.truth.count)
        #expect(wrong == 0)
    }

    @Test func aMissingFileFailsWithItsName() throws {
        let r = try run(["replay", "/nonexistent.log"])
        #expect(r.status == 1)
        #expect(r.err == "contid replay: /nonexistent.log: No such file or directory\n")
    }

    @Test func helpDescribesTheFormats() throws {
        let r = try run(["replay", "--help"])
        #expect(r.status == 0)
        #expect(r.out.contains("summary  one line: records=N events=N errors=N lost=N"))
    }
}

extension ReplayCommandTests {
    @Test func progressEndsWithTheWholeFileRead() throws {
        let path = try temporaryFile("type=SYSCALL msg=audit(1700000000.000:1): pid=1\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try run(["replay", "--format", "summary", "--progress", path])
        #expect(r.status == 0)
        #expect(r.err.hasPrefix("\r\(path): 0/0 MB (100%)"), "\(r.err.debugDescription)")
        #expect(r.err.hasSuffix("\n"))
        #expect(try run(["replay", "--format", "summary", path]).err == "")
    }
}
