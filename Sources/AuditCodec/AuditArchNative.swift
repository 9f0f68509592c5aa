// Which audit architectures this machine runs: the default of `-F arch=b64`
// for rules, and the ABIs contid's own rules must cover.

extension AuditArch {
    /// This machine's native architecture.
    public static var native: AuditArch {
        #if arch(x86_64)
        return .x86_64
        #elseif arch(arm64)
        return .aarch64
        #else
        fatalError("unsupported architecture")
        #endif
    }

    /// Every ABI whose processes can run here (x86_64 also runs i386 binaries).
    public static var supported: [AuditArch] {
        #if arch(x86_64)
        return [.x86_64, .i386]
        #else
        return [.native]
        #endif
    }
}
