import Glibc
import AuditCodec
import LinuxAudit
import SystemPackage
import Testing

@Suite struct PeerIdentityTests {
    @Test func socketPairPeerIsThisProcessWithAPidfdForIt() throws {
        let (a, b) = try UnixConnection.pair()
        let peer = try a.peer()
        #expect(peer.credentials == PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid()))
        #expect(try PinnedProcess.pid(ofPidfd: peer.process.descriptor) == getpid())
        #expect(try peer.process.isAlive)
        try peer.process.signal(0)
        try b.send([1, 2, 3])
        #expect(try a.receive() == [1, 2, 3])
    }

    @Test func listenerHasItsModeAndAcceptsAClientOfThisProcess() throws {
        let dir = "/tmp/contid-peer-\(getpid())-self"
        mkdir(dir, 0o700)
        defer { rmdir(dir) }
        let path = "\(dir)/registration.sock"
        do {
            let listener = try UnixListener(path: path, mode: 0o660)
            var st = stat()
            #expect(lstat(path, &st) == 0)
            #expect(st.st_mode & S_IFMT == S_IFSOCK)
            #expect(st.st_mode & 0o777 == 0o660)
            #expect(try listener.accept(timeout: .milliseconds(10)) == nil)
            let client = try UnixConnection.connect(path: path)
            let server = try #require(try listener.accept(timeout: .seconds(5)))
            #expect(try server.peer().credentials.pid == getpid())
            #expect(try client.peer().credentials.pid == getpid())
            try client.send(Array("request".utf8))
            #expect(try server.receive() == Array("request".utf8))
            try server.send(Array("reply".utf8))
            #expect(try client.receive() == Array("reply".utf8))
            let tooLong = [UInt8](repeating: 7, count: 100)
            try client.send(tooLong)
            let error = #expect(throws: LinuxAuditError.self) { try server.receive(maxLength: 10) }
            #expect(error?.errno == .messageTooLong)
            _ = server
        }
        #expect(access(path, F_OK) != 0, "listener left its socket file behind")
    }

    @Test func connectedClientIsPinnedAndItsRealParentVerifiedFromTheKernel() throws {
        try requireRoot()
        let dir = "/tmp/contid-peer-\(getpid())"
        mkdir(dir, 0o700)
        defer { rmdir(dir) }
        let path = "\(dir)/registration.sock"
        let listener = try UnixListener(path: path)
        let script = """
            use Socket; socket(my $s, AF_UNIX, SOCK_SEQPACKET, 0) or die "socket: $!";
            connect($s, pack_sockaddr_un($ARGV[0])) or die "connect: $!";
            send($s, "hello", 0); my $r = ""; recv($s, $r, 100, 0); exit($r eq "ok" ? 0 : 1);
            """
        // sh forks perl (the "; exit" keeps sh from exec'ing it), so perl's parent is sh.
        let shell = try spawn(["/bin/sh", "-c", "/usr/bin/perl -e \"$1\" \"$2\"; exit $?", "sh", script, path])
        var reaped = false
        defer { if !reaped { kill(shell, SIGKILL); _ = try? waitChild(shell) } }

        let connection = try #require(try listener.accept(timeout: .seconds(30)), "perl client did not connect")
        let peer = try connection.peer()
        let perl = peer.credentials.pid
        #expect(perl != shell)
        #expect(peer.credentials.uid == 0 && peer.credentials.gid == 0)
        #expect(try PinnedProcess.pid(ofPidfd: peer.process.descriptor) == perl)
        #expect(try peer.process.isAlive)
        #expect(try ProcFS().stat(pid: perl).comm == "perl")
        #expect(try peer.process.parentPID() == shell)
        #expect(try peer.process.isChild(of: shell))
        #expect(try !peer.process.isChild(of: getpid()))
        #expect(try PinnedProcess(pid: shell).isChild(of: getpid()))
        #expect(try peer.process.effectiveCapabilities() == ProcFS().status(pid: getpid()).capEff)
        #expect(try peer.process.userNamespace() == NamespaceKind.user.initialInode)
        #expect(try peer.process.startTime() == ProcFS().stat(pid: perl).startTime)

        #expect(try connection.receive() == Array("hello".utf8))
        try connection.send(Array("ok".utf8))
        #expect(try waitChild(shell) == 0)
        reaped = true

        // perl has exited (and been reaped by sh): the pin says so, and reads through it fail.
        #expect(try !peer.process.isAlive)
        #expect(try PinnedProcess.pid(ofPidfd: peer.process.descriptor) == -1)
        let error = #expect(throws: LinuxAuditError.self) { try peer.process.parentPID() }
        #expect(error?.errno == .noSuchProcess)
    }
}
