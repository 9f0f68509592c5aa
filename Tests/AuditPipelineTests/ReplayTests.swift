import Foundation
import Testing
import AuditCodec
@testable import AuditPipeline

final class CollectedOutput: ReplayOutput {
    var text = ""
    var diagnostics: [String] = []
    func write(_ s: String) { text += s }
    func diagnostic(_ s: String) { diagnostics.append(s) }
}

func temporaryFile(_ contents: String) throws -> String {
    let path = NSTemporaryDirectory() + "contid-test-\(UUID().uuidString).log"
    try contents.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

@Suite struct ReplayTests {
    @Test func badLinesAreReportedWithFileAndLineAndSkipped() throws {
        let path = try temporaryFile("""
            type=SYSCALL msg=audit(1700000000.000:1): syscall=59 pid=1
            garbage here
            # a comment
            type=SYSCALL msg=audit(1700000000.00:2): pid=2
            type=PATH msg=audit(1700000000.000:1): item=0

            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let out = CollectedOutput()
        let r = Replay(format: .summary, output: out)
        try r.read(path: path)
        let s = r.finish()
        #expect(out.diagnostics == [
            "\(path):2: column 1: expected \"type=NAME\" (optionally after \"node=NAME \")",
            "\(path):4: column 35: bad timestamp: expected three digits of milliseconds and ':'",
        ])
        #expect(out.text == "records=2 events=1 errors=2 lost=0\n")
        #expect(s.comments == 1)
    }

    @Test func jsonFormIsOneEventPerLineWithDecodedFields() throws {
        let path = try temporaryFile("""
            node=n1 type=SYSCALL msg=audit(1700000000.123:7): arch=c000003e syscall=59 success=yes exit=0 pid=10 comm="sh" exe=2F746D702F612062 key=(null)\u{1D}ARCH=x86_64 SYSCALL=execve
            node=n1 type=EXECVE msg=audit(1700000000.123:7): argc=2 a0="sh" a1=68656C6C6F20776F726C64
            node=n1 type=CONTAINER_ID msg=audit(1700000000.123:7): record=1 contid=4,^2,^1

            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let out = CollectedOutput()
        let r = Replay(format: .json, output: out)
        try r.read(path: path)
        r.finish()
        let expected = #"{"node":"n1","serial":7,"time":"1700000000.123","contid":"4,^2,^1","labels":{},"records":[{"type":"SYSCALL","fields":{"arch":"c000003e","syscall":"59","success":"yes","exit":"0","pid":"10","comm":"sh","exe":"/tmp/a b","key":null},"interpreted":{"ARCH":"x86_64","SYSCALL":"execve"},"raw":"node=n1 type=SYSCALL msg=audit(1700000000.123:7): arch=c000003e syscall=59 success=yes exit=0 pid=10 comm=\"sh\" exe=2F746D702F612062 key=(null)\u001dARCH=x86_64 SYSCALL=execve"},{"type":"EXECVE","fields":{"argc":"2","a0":"sh","a1":"hello world"},"raw":"node=n1 type=EXECVE msg=audit(1700000000.123:7): argc=2 a0=\"sh\" a1=68656C6C6F20776F726C64"},{"type":"CONTAINER_ID","fields":{"record":"1","contid":"4,^2,^1"},"raw":"node=n1 type=CONTAINER_ID msg=audit(1700000000.123:7): record=1 contid=4,^2,^1"}]}"#
        #expect(out.text == expected + "\n")
        // Every line is valid JSON.
        let obj = try JSONSerialization.jsonObject(with: Data(out.text.utf8)) as? [String: Any]
        #expect(obj?["serial"] as? Int == 7)
    }

    @Test func rawFormGroupsInterleavedRecordsByEvent() throws {
        let path = try temporaryFile("""
            type=SYSCALL msg=audit(1700000000.000:1): a=1
            type=SYSCALL msg=audit(1700000000.000:2): b=1
            type=PATH msg=audit(1700000000.000:1): a=2
            type=EOE msg=audit(1700000000.000:1):
            type=EOE msg=audit(1700000000.000:2):

            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let out = CollectedOutput()
        let r = Replay(format: .raw, output: out)
        try r.read(path: path)
        r.finish()
        #expect(out.text == """
            type=SYSCALL msg=audit(1700000000.000:1): a=1
            type=PATH msg=audit(1700000000.000:1): a=2
            type=SYSCALL msg=audit(1700000000.000:2): b=1

            """)
    }

    @Test func aFinalLineWithoutNewlineIsRead() throws {
        let path = try temporaryFile("type=SYSCALL msg=audit(1700000000.000:1): a=1")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let out = CollectedOutput()
        let r = Replay(format: .summary, output: out)
        try r.read(path: path)
        #expect(r.finish().records == 1)
    }

    @Test func aMissingFileIsAnErrorNamingIt() {
        let r = Replay(format: .summary, output: CollectedOutput())
        #expect(throws: LogReadError.self) { try r.read(path: "/nonexistent/x.log") }
        do { try r.read(path: "/nonexistent/x.log") } catch { #expect("\(error)" == "/nonexistent/x.log: No such file or directory") }
    }

    @Test func linesLongerThanTheReadChunkAreWhole() throws {
        let long = "type=EXECVE msg=audit(1700000000.000:1): argc=1 a0=" + String(repeating: "41", count: 30_000)
        let path = try temporaryFile(long + "\n" + "type=SYSCALL msg=audit(1700000000.000:1): a=1\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let reader = try LogReader(path: path, chunkSize: 4096)
        var lengths: [Int] = []
        try reader.forEachLine { l, _ in lengths.append(l.count) }
        #expect(lengths == [long.utf8.count, 45])
    }
}
