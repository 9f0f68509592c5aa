import ContainerEngine
import Foundation
import Testing

/// SPEC §9: the ID of a runtime's container when no annotation names one.
@Suite struct DerivedContainerIDTests {
    private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    @Test func sha1MatchesFIPS180Vectors() {
        #expect(hex(SHA1.digest([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(hex(SHA1.digest(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(hex(SHA1.digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(hex(SHA1.digest([UInt8](repeating: UInt8(ascii: "a"), count: 1000))) == "291e9a6c66994949b57ba5e650361e98fc36b1ba")
        // Messages whose padding spills into a second block (55, 56 and 64 bytes).
        #expect(hex(SHA1.digest([UInt8](repeating: 0x61, count: 55))) == "c1c8bbdc22796e28c0e15163d20899b65621d65a")
        #expect(hex(SHA1.digest([UInt8](repeating: 0x61, count: 56))) == "c2db330f6083854c99d4b5bfb6e8f29f201be699")
        #expect(hex(SHA1.digest([UInt8](repeating: 0x61, count: 64))) == "0098ba824b5c16427bd7a1122a5a442a25ec644d")
    }

    @Test func aUUIDContainerIDIsTheIDAsIs() {
        #expect(ContainerID(runtimeContainerID: "6F9619FF-8B86-D011-B42D-00C04FC964FF").description
                == "6f9619ff-8b86-d011-b42d-00c04fc964ff")
    }

    @Test func a64HexContainerIDGivesItsFirst32HexDigits() {
        let podman = "e02271d0904de3ed844ff4a20f6d46aa6fa0bbdff27bd472d951c531400aaf43"
        #expect(ContainerID(runtimeContainerID: podman).description == "e02271d0-904d-e3ed-844f-f4a20f6d46aa")
    }

    @Test func otherNamesGiveTheVersion5UUIDOfOciColonName() {
        // Vectors from python3: uuid.uuid5(uuid.NAMESPACE_URL, "oci:" + name).
        #expect(ContainerID(runtimeContainerID: "t1").description == "e618904c-2857-5b1f-b97f-8cbf5f28d82b")
        #expect(ContainerID(runtimeContainerID: "web").description == "fe918017-146f-5ac6-a1ea-86b7a2d0d3d3")
        #expect(ContainerID(runtimeContainerID: "").description == "5946ce8d-f0ea-58b3-acb0-11b0ea8cc34a")
        #expect(ContainerID(runtimeContainerID: "контейнер").description == "e9001883-59df-5d11-bff2-dbab463e053d")
        // Near misses of the other forms are names too.
        #expect(ContainerID(runtimeContainerID: "123456").description != "123456")
        #expect(ContainerID(runtimeContainerID: String(repeating: "a", count: 63)).description.count == 36)
        #expect(ContainerID(runtimeContainerID: String(repeating: "g", count: 64)).description.dropFirst(14).first == "5")
    }

    @Test func a64HexIDWhoseFirstHalfIsTheUnsetValueIsNamed() {
        let id = "0000000000000000ffffffffffffffff" + String(repeating: "0", count: 32)
        #expect(ContainerID(runtimeContainerID: id) == ContainerID.nameBased(Array(("oci:" + id).utf8), in: .urlNamespace))
    }

    /// An independent computation: python3's uuid module, on names of every length
    /// around the SHA-1 block boundaries and on arbitrary bytes of UTF-8.
    @Test func version5IDsEqualPython3sUUID5() throws {
        var names = (0..<130).map { String(repeating: "n", count: $0) }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<40 {
            let scalars = (0..<Int.random(in: 1...80, using: &generator)).map { _ in
                Unicode.Scalar(UInt32.random(in: 0x21...0x7e, using: &generator))!
            }
            names.append(String(String.UnicodeScalarView(scalars)) + "é-☃")
        }
        let script = """
            import sys, uuid
            for line in sys.stdin.read().split("\\n")[:-1]:
                print(uuid.uuid5(uuid.NAMESPACE_URL, "oci:" + line))
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", script]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        input.fileHandleForWriting.write(Data(names.map { $0 + "\n" }.joined().utf8))
        try input.fileHandleForWriting.close()
        let expected = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").map(String.init)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(expected.count == names.count)
        for (name, want) in zip(names, expected) {
            #expect(ContainerID(runtimeContainerID: name).description == want, "name \(name)")
        }
    }
}
