import Glibc
import AuditCodec
import LinuxAudit
import Testing

func readLink(_ path: String) -> String {
    var buf = [CChar](repeating: 0, count: 256)
    let n = readlink(path, &buf, buf.count - 1)
    return String(decoding: buf[..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

@Suite struct NamespaceTests {
    @Test func ourNamespacesMatchTheProcLinksAndAreTheInitialOnes() throws {
        try requireRoot()
        let me = try ProcessNamespaces.read(pid: getpid())
        #expect(Set(me.inodes.keys) == Set(NamespaceKind.allCases))
        for kind in NamespaceKind.allCases {
            #expect(readLink("/proc/self/ns/\(kind.rawValue)") == "\(kind.rawValue):[\(me[kind] ?? 0)]")
            #expect(me[kind] == kind.initialInode, "test process is not in the initial \(kind) namespace")
        }
        var st = stat()
        #expect(stat("/proc/self/ns/net", &st) == 0)
        #expect(me.device == UInt64(st.st_dev))
        #expect(me.deviceString == "00:\(String(UInt64(st.st_dev) & 0xff, radix: 16).count == 1 ? "0" : "")\(String(UInt64(st.st_dev) & 0xff, radix: 16))")
        #expect(try ProcFS().isInInitialUserNamespace(pid: getpid()))
    }

    @Test func childOfUnshareNetDiffersOnlyInNetAndItsNamespaceDiesWithIt() throws {
        try requireRoot()
        let me = try ProcessNamespaces.read(pid: getpid())
        // In a process group of its own, killed as a group: --kill-child alone leaves the
        // sleeper alive (with the namespace) when unshare dies before the sleeper's prctl.
        let child = try spawnRedirected(["/usr/bin/unshare", "--net", "--fork", "--kill-child", "/bin/sleep", "30"],
                                        output: "/dev/null", ownProcessGroup: true)
        var reaped = false
        defer { if !reaped { kill(-child, SIGKILL); _ = try? waitChild(child) } }

        // unshare(2) happens a moment after the spawn.
        var them = try ProcessNamespaces.read(pid: child)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while them[.net] == me[.net] && clock.now < deadline {
            usleep(10_000)
            them = try ProcessNamespaces.read(pid: child)
        }
        #expect(them[.net] != me[.net])
        #expect(readLink("/proc/\(child)/ns/net") == "net:[\(them[.net] ?? 0)]")
        for kind in NamespaceKind.allCases where kind != .net { #expect(them[kind] == me[kind], "\(kind)") }
        #expect(them.device == me.device)

        // NS_GET_ID: a 64-bit id per namespace.
        let ourID = try #require(try NamespaceID.uniqueID(pid: getpid(), .net))
        let theirID = try #require(try NamespaceID.uniqueID(pid: child, .net))
        #expect(ourID != theirID)
        #expect(try NamespaceID.uniqueID(pid: child, .uts) == NamespaceID.uniqueID(pid: getpid(), .uts))

        // The nsfs file handle: {u64 ns_id, u32 ns_type, u32 inode} on 6.18.
        let handle = try #require(try NamespaceHandle.of(pid: child, .net), "nsfs file handles unsupported")
        #expect(handle.handle.count == 16)
        handle.handle.withUnsafeBytes { raw in
            #expect(raw.loadUnaligned(as: UInt64.self) == theirID)
            #expect(UInt64(raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self)) == NamespaceKind.net.cloneFlag.rawValue)
            #expect(UInt64(raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self)) == them[.net])
        }
        #expect(handle.liveness() == .alive)
        #expect(try NamespaceHandle.of(pid: getpid(), .net)?.liveness() == .alive)
        // The parsed layout, and a check through a descriptor kept open.
        #expect(handle.nsid == theirID && handle.inode == them[.net])
        let mount = try NamespaceHandle.mountDescriptor(.net)
        defer { try? mount.close() }
        #expect(handle.liveness(mount: mount) == .alive)

        // With unshare and its child killed, the namespace goes away.
        kill(-child, SIGKILL)
        _ = try waitChild(child)
        reaped = true
        var liveness = handle.liveness()
        let gone = clock.now + .seconds(20)
        while liveness == .alive && clock.now < gone {
            usleep(20_000)
            liveness = handle.liveness()
        }
        #expect(liveness == .gone)
        #expect(handle.liveness(mount: mount) == .gone)
    }
}
