#if os(Linux)
import Glibc

// SIGTERM, SIGINT, SIGHUP and SIGUSR1 reach a poll loop through a self-pipe: the
// handler only writes the signal number, the loop acts on it.

nonisolated(unsafe) private var signalPipeWrite: Int32 = -1

public enum SignalPipe {
    public static let handled: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1]

    /// Installs the handlers (and ignores SIGPIPE); returns the read end (non-blocking).
    public static func install() throws -> Int32 {
        var fds: [Int32] = [-1, -1]
        try Syscall.retrying("pipe") { pipe(&fds) }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        signalPipeWrite = fds[1]
        signal(SIGPIPE, SIG_IGN)
        // A parent may have started us with signals blocked (posix_spawn keeps the mask).
        var set = sigset_t()
        sigemptyset(&set)
        for s in handled { sigaddset(&set, s) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        for s in handled {
            signal(s) { sig in
                var b = UInt8(truncatingIfNeeded: sig)
                let saved = errno
                _ = write(signalPipeWrite, &b, 1)
                errno = saved
            }
        }
        return fds[0]
    }

    /// The signals that arrived since the last call.
    public static func take(_ fd: Int32) -> [Int32] {
        var out: [Int32] = []
        var buf = [UInt8](repeating: 0, count: 64)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            out += buf[..<n].map { Int32($0) }
        }
        return out
    }
}
#endif
