// Reads audit log text from a file descriptor in large chunks and hands out
// lines (without the newline) with their line numbers. Lines may span chunks.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct LogReadError: Error, CustomStringConvertible {
    public var path: String
    public var errno: Int32
    public var description: String { "\(path): \(String(cString: strerror(errno)))" }
}

public final class LogReader {
    public let path: String
    private let fd: Int32
    private let ownsFD: Bool
    private var buffer: UnsafeMutableRawBufferPointer
    public private(set) var bytesRead: Int = 0
    /// Called after every chunk read with the bytes read so far (progress reports).
    public var onChunk: ((Int) -> Void)?

    /// The file's size when it is a regular file (nil for pipes and standard input).
    public var size: Int? {
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(st.st_size)
    }

    /// Opens a file, or standard input for "-".
    public init(path: String, chunkSize: Int = 256 << 10) throws {
        self.path = path
        if path == "-" {
            fd = 0
            ownsFD = false
        } else {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw LogReadError(path: path, errno: errno) }
            ownsFD = true
            #if os(Linux)
            _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_SEQUENTIAL))
            #endif
        }
        buffer = .allocate(byteCount: chunkSize, alignment: 64)
    }

    deinit {
        if ownsFD { close(fd) }
        buffer.deallocate()
    }

    /// Calls `body(line, lineNumber)` for every line; the pointer is valid only during the call.
    /// A final line without a newline is handed out too.
    public func forEachLine(_ body: (UnsafeRawBufferPointer, Int) throws -> Void) throws {
        var lineNumber = 0
        var filled = 0      // bytes in buffer
        var start = 0       // start of the current partial line
        while true {
            if filled == buffer.count {
                if start == 0 {
                    // One line longer than the buffer: grow.
                    let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: buffer.count * 2, alignment: 64)
                    bigger.copyMemory(from: UnsafeRawBufferPointer(buffer))
                    buffer.deallocate()
                    buffer = bigger
                } else {
                    // Move the partial line to the front.
                    let rest = filled - start
                    if rest > 0 { memmove(buffer.baseAddress!, buffer.baseAddress! + start, rest) }
                    filled = rest
                    start = 0
                }
            }
            let n = read(fd, buffer.baseAddress! + filled, buffer.count - filled)
            if n < 0 {
                if errno == EINTR { continue }
                throw LogReadError(path: path, errno: errno)
            }
            if n == 0 {
                if filled > start {
                    lineNumber += 1
                    try body(UnsafeRawBufferPointer(start: buffer.baseAddress! + start, count: filled - start), lineNumber)
                }
                return
            }
            bytesRead += n
            onChunk?(bytesRead)
            let base = UnsafeRawPointer(buffer.baseAddress!)
            var scan = filled
            filled += n
            while scan < filled, let nl = memchr(base + scan, 0x0A, filled - scan) {
                let end = base.distance(to: UnsafeRawPointer(nl))
                lineNumber += 1
                try body(UnsafeRawBufferPointer(start: base + start, count: end - start), lineNumber)
                start = end + 1
                scan = start
            }
        }
    }
}
