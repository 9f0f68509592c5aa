import AuditCodec
import LinuxAudit
import Testing

/// contid's tracking rules take their numbers from the one syscall table by name.
@Suite struct TrackingRuleTests {
    @Test func trackedSyscallsAreTheAusyscallNumbersOfEachArch() {
        #expect(Set(AuditArch.x86_64.trackedSyscalls) == [56, 57, 58, 59, 231, 272, 308, 322, 435])
        #expect(Set(AuditArch.i386.trackedSyscalls) == [120, 2, 190, 11, 252, 310, 346, 358, 435])
        #expect(Set(AuditArch.aarch64.trackedSyscalls) == [220, 221, 94, 97, 268, 281, 435])
        #expect(AuditArch.x86_64.namespaceSyscalls == [272, 308])
        #expect(AuditArch.i386.namespaceSyscalls == [310, 346])
        #expect(AuditArch.aarch64.namespaceSyscalls == [97, 268])
        #expect(AuditArch(rawValue: 0x4000_0028).trackedSyscalls == [])
    }
}
