#if os(Linux)
import CAuditLinux
import Glibc
import SystemPackage

// A blocking HTTP/1.1 client over one TCP connection, kept alive between requests:
// enough for ClickHouse's HTTP interface (POST a body, read a Content-Length or
// chunked answer). Plain POSIX sockets: no event loop, no TLS (a fleet store behind
// loopback or a local proxy). Timeouts are the socket's SO_SNDTIMEO/SO_RCVTIMEO.

/// One HTTP answer: status, headers (names lowercased), body.
public struct HTTPResponse: Sendable {
    public let status: Int
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]

    public func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }
    public var text: String { String(decoding: body, as: UTF8.self) }
}

public final class HTTPConnection {
    public let host: String
    public let port: UInt16
    public let timeout: Duration
    private var fd: FileDescriptor?
    /// Received bytes not consumed yet.
    private var input: [UInt8] = []
    private var inputStart = 0

    public init(host: String, port: UInt16, timeout: Duration = .seconds(30)) {
        self.host = host
        self.port = port
        self.timeout = timeout
    }

    deinit { close() }

    public func close() {
        if let fd { try? fd.close() }
        fd = nil
        input.removeAll(keepingCapacity: true)
        inputStart = 0
    }

    /// Sends one request and reads its answer. A kept-alive connection the server has
    /// closed meanwhile is opened again once (the request was not read by anyone).
    public func request(method: String, target: String, headers: [(String, String)] = [],
                        body: UnsafeRawBufferPointer) throws -> HTTPResponse {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: \(host):\(port)\r\nContent-Length: \(body.count)\r\n"
        for (n, v) in headers { head += "\(n): \(v)\r\n" }
        head += "\r\n"
        let reused = fd != nil
        do {
            return try exchange(head: head, body: body)
        } catch HTTPConnectionError.closedBeforeAnswer where reused {
            close()
            return try exchange(head: head, body: body)
        } catch LinuxAuditError.syscall(let what, let e) where reused && (what.hasPrefix("send") || what.hasPrefix("recv"))
                    && (e == .brokenPipe || e == .connectionReset) {
            // Closed by the server's keep-alive timeout: a batch sent again is harmless
            // (the fleet store removes duplicates), a lost one is not.
            close()
            return try exchange(head: head, body: body)
        }
    }

    private func exchange(head: String, body: UnsafeRawBufferPointer) throws -> HTTPResponse {
        let fd = try connected()
        do {
            var h = Array(head.utf8)
            try h.withUnsafeBytes { try sendAll(fd, $0) }
            h.removeAll()
            if body.count > 0 { try sendAll(fd, body) }
            let response = try readResponse(fd)
            if response.header("connection")?.lowercased() == "close" { close() }
            return response
        } catch {
            close()
            throw error
        }
    }

    private func connected() throws -> FileDescriptor {
        if let fd { return fd }
        let what = "\(host):\(port)"
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw HTTPConnectionError.unresolved(host: host, reason: String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(list) }
        var lastError: Error = HTTPConnectionError.unresolved(host: host, reason: "no address")
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            do {
                let s = try Syscall.retrying("socket(TCP \(what))") {
                    Glibc.socket(a.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                }
                let sfd = FileDescriptor(rawValue: s)
                do {
                    let tv = timeval(tv_sec: Int(timeout.components.seconds),
                                     tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
                    try Syscall.setOption(sfd, SOL_SOCKET, SO_SNDTIMEO, tv, "SO_SNDTIMEO")
                    try Syscall.setOption(sfd, SOL_SOCKET, SO_RCVTIMEO, tv, "SO_RCVTIMEO")
                    try Syscall.setOption(sfd, Int32(IPPROTO_TCP), TCP_NODELAY, Int32(1), "TCP_NODELAY")
                    try Syscall.retrying("connect(\(what))") { Glibc.connect(s, a.pointee.ai_addr, a.pointee.ai_addrlen) }
                    fd = sfd
                    return sfd
                } catch {
                    try? sfd.close()
                    throw error
                }
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    private func sendAll(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < bytes.count {
            let n = try Syscall.retrying("send(\(host):\(port))") {
                Glibc.send(fd.rawValue, bytes.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL))
            }
            off += n
        }
    }

    // MARK: reading the answer

    /// More bytes into `input`; false at end of stream.
    private func fill(_ fd: FileDescriptor) throws -> Bool {
        if inputStart > 0, inputStart == input.count {
            input.removeAll(keepingCapacity: true)
            inputStart = 0
        }
        let old = input.count
        input.reserveCapacity(old + 65536)
        input.append(contentsOf: repeatElement(0, count: 65536))
        let n: Int
        do {
            n = try input.withUnsafeMutableBytes { raw in
                try Syscall.retrying("recv(\(host):\(port))") { Glibc.recv(fd.rawValue, raw.baseAddress! + old, 65536, 0) }
            }
        } catch LinuxAuditError.syscall(_, let e) where e == .resourceTemporarilyUnavailable {
            input.removeSubrange(old...)
            throw HTTPConnectionError.timedOut(host: "\(host):\(port)", after: timeout)
        } catch {
            input.removeSubrange(old...)
            throw error
        }
        input.removeSubrange((old + n)...)
        return n > 0
    }

    /// The next line ending in CRLF, without it.
    private func line(_ fd: FileDescriptor, first: Bool = false) throws -> String {
        var scanned = 0  // bytes after inputStart without a CRLF (fill may move the buffer)
        while true {
            var i = inputStart + scanned
            while i + 1 < input.count {
                if input[i] == 13, input[i + 1] == 10 {
                    let s = String(decoding: input[inputStart..<i], as: UTF8.self)
                    inputStart = i + 2
                    return s
                }
                i += 1
            }
            scanned = max(0, input.count - 1 - inputStart)
            guard try fill(fd) else {
                if first && input.count == inputStart { throw HTTPConnectionError.closedBeforeAnswer }
                throw HTTPConnectionError.malformed(host: "\(host):\(port)", reason: "connection closed inside the answer")
            }
        }
    }

    private func bytes(_ fd: FileDescriptor, _ count: Int, into out: inout [UInt8]) throws {
        var left = count
        while left > 0 {
            if inputStart == input.count, try !fill(fd) {
                throw HTTPConnectionError.malformed(host: "\(host):\(port)", reason: "connection closed inside the body")
            }
            let take = min(left, input.count - inputStart)
            out.append(contentsOf: input[inputStart..<(inputStart + take)])
            inputStart += take
            left -= take
        }
    }

    private func readResponse(_ fd: FileDescriptor) throws -> HTTPResponse {
        let statusLine = try line(fd, first: true)
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw HTTPConnectionError.malformed(host: "\(host):\(port)", reason: "status line \"\(statusLine.prefix(80))\"")
        }
        var headers: [(name: String, value: String)] = []
        while true {
            let l = try line(fd)
            if l.isEmpty { break }
            guard let colon = l.firstIndex(of: ":") else { continue }
            headers.append((l[..<colon].lowercased(), l[l.index(after: colon)...].trimmingSpaces()))
        }
        var body: [UInt8] = []
        let response = { HTTPResponse(status: status, headers: headers, body: body) }
        if headers.contains(where: { $0.name == "transfer-encoding" && $0.value.lowercased().contains("chunked") }) {
            while true {
                let sizeLine = try line(fd)
                guard let size = Int(sizeLine.split(separator: ";").first.map(String.init)?.trimmingSpaces() ?? "", radix: 16) else {
                    throw HTTPConnectionError.malformed(host: "\(host):\(port)", reason: "chunk size \"\(sizeLine.prefix(40))\"")
                }
                if size == 0 {
                    while try !line(fd).isEmpty {}  // trailers
                    break
                }
                try bytes(fd, size, into: &body)
                _ = try line(fd)
            }
        } else if let length = headers.first(where: { $0.name == "content-length" }).flatMap({ Int($0.value) }) {
            try bytes(fd, length, into: &body)
        } else if status != 204 && status != 304 {
            // No length: the body runs to the end of the connection.
            while true {
                if inputStart < input.count { body.append(contentsOf: input[inputStart...]); inputStart = input.count }
                guard try fill(fd) else { break }
            }
            close()
        }
        return response()
    }
}

public enum HTTPConnectionError: Error, Equatable, Sendable, CustomStringConvertible {
    case unresolved(host: String, reason: String)
    case timedOut(host: String, after: Duration)
    case malformed(host: String, reason: String)
    /// The server closed the connection before answering (a kept-alive connection it dropped).
    case closedBeforeAnswer

    public var description: String {
        switch self {
        case .unresolved(let h, let r): return "cannot resolve \(h): \(r)"
        case .timedOut(let h, let d): return "\(h) did not answer within \(d) (ETIMEDOUT)"
        case .malformed(let h, let r): return "malformed HTTP answer from \(h): \(r)"
        case .closedBeforeAnswer: return "the server closed the connection before answering (ECONNRESET)"
        }
    }
}

extension StringProtocol {
    fileprivate func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
#endif
