import AuditCodec

// The container ID an OCI runtime's container gets when its annotations name none
// (SPEC §9): a UUID as is, a 64-hex ID (docker, podman, containerd) by its first 32
// hex digits, anything else by a name-based UUID (RFC 4122 version 5, SHA-1) in the
// URL namespace of the name `oci:` + id, so an orchestrator can compute it itself:
//   python3 -c 'import uuid; print(uuid.uuid5(uuid.NAMESPACE_URL, "oci:" + id))'

extension ContainerID {
    /// RFC 4122's URL namespace, 6ba7b811-9dad-11d1-80b4-00c04fd430c8.
    public static let urlNamespace = ContainerID(high: 0x6ba7_b811_9dad_11d1, low: 0x80b4_00c0_4fd4_30c8)!

    /// The ID SPEC §9 derives from a runtime's container ID.
    public init(runtimeContainerID id: String) {
        let utf8 = Array(id.utf8)
        if utf8.count == 36, utf8[8] == UInt8(ascii: "-"), let uuid = try? ContainerID.parseRequest(id) {
            self = uuid
        } else if utf8.count == 64, utf8.allSatisfy({ AuditText.hexValue($0) != nil }),
                  let prefix = try? ContainerID.parseRequest(String(decoding: utf8[..<32], as: UTF8.self)) {
            self = prefix
        } else {
            // Also a 64-hex ID whose first half is the unset value: no registration may carry that.
            self = ContainerID.nameBased(Array("oci:".utf8) + utf8, in: .urlNamespace)
        }
    }

    /// RFC 4122 §4.3 version 5: SHA-1 of the namespace's 16 bytes and the name, version
    /// and variant bits set.
    public static func nameBased(_ name: [UInt8], in namespace: ContainerID) -> ContainerID {
        var input: [UInt8] = []
        input.reserveCapacity(16 + name.count)
        for shift in stride(from: 56, through: 0, by: -8) { input.append(UInt8(truncatingIfNeeded: namespace.high >> UInt64(shift))) }
        for shift in stride(from: 56, through: 0, by: -8) { input.append(UInt8(truncatingIfNeeded: namespace.low >> UInt64(shift))) }
        input += name
        let digest = SHA1.digest(input)
        var high: UInt64 = 0
        var low: UInt64 = 0
        for b in digest[0..<8] { high = high << 8 | UInt64(b) }
        for b in digest[8..<16] { low = low << 8 | UInt64(b) }
        high = (high & ~0xf000) | 0x5000  // version 5 in time_hi_and_version
        low = (low & ~(0xc0 << 56)) | (0x80 << 56)  // variant 10xx in clock_seq_hi
        return ContainerID(high: high, low: low)!  // the version bits make high non-zero
    }
}

/// SHA-1 (FIPS 180-4), for name-based UUIDs only: RFC 4122 fixes the hash, and no
/// security rests on it (the ID is public; registration is what is checked).
public enum SHA1 {
    public static func digest(_ message: [UInt8]) -> [UInt8] {
        var h: (UInt32, UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)
        var padded = message
        padded.append(0x80)
        while padded.count % 64 != 56 { padded.append(0) }
        let bits = UInt64(message.count) &* 8
        for shift in stride(from: 56, through: 0, by: -8) { padded.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }

        var w = [UInt32](repeating: 0, count: 80)
        for block in stride(from: 0, to: padded.count, by: 64) {
            for t in 0..<16 {
                let i = block + 4 * t
                w[t] = UInt32(padded[i]) << 24 | UInt32(padded[i + 1]) << 16 | UInt32(padded[i + 2]) << 8 | UInt32(padded[i + 3])
            }
            for t in 16..<80 { w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1) }
            var (a, b, c, d, e) = h
            for t in 0..<80 {
                let f: UInt32, k: UInt32
                switch t {
                case 0..<20: (f, k) = ((b & c) | (~b & d), 0x5A82_7999)
                case 20..<40: (f, k) = (b ^ c ^ d, 0x6ED9_EBA1)
                case 40..<60: (f, k) = ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC)
                default: (f, k) = (b ^ c ^ d, 0xCA62_C1D6)
                }
                let temp = rotl(a, 5) &+ f &+ e &+ k &+ w[t]
                (e, d, c, b, a) = (d, c, rotl(b, 30), a, temp)
            }
            h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e)
        }
        var out: [UInt8] = []
        out.reserveCapacity(20)
        for word in [h.0, h.1, h.2, h.3, h.4] {
            for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: word >> UInt32(shift))) }
        }
        return out
    }

    @inline(__always)
    private static func rotl(_ x: UInt32, _ n: UInt32) -> UInt32 { x << n | x >> (32 - n) }
}
