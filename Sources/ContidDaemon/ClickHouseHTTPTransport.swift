// The fleet store's transport: ClickHouse's HTTP interface over LinuxAudit's
// HTTPConnection (one kept-alive connection). Credentials travel as
// X-ClickHouse-User / X-ClickHouse-Key headers, never in the URL the server logs.

import AuditPipeline
import LinuxAudit

public final class ClickHouseHTTPTransport: ClickHouseTransport {
    public let endpoint: ClickHouseEndpoint
    private let connection: HTTPConnection
    private let headers: [(String, String)]

    public init(endpoint: ClickHouseEndpoint, timeout: Duration = .seconds(30)) {
        self.endpoint = endpoint
        connection = HTTPConnection(host: endpoint.host, port: endpoint.port, timeout: timeout)
        var h: [(String, String)] = []
        if let u = endpoint.user { h.append(("X-ClickHouse-User", u)) }
        if let p = endpoint.password { h.append(("X-ClickHouse-Key", p)) }
        headers = h
    }

    public func execute(query: String, body: UnsafeRawBufferPointer) throws(ClickHouseError) -> [UInt8] {
        // A statement without data goes as the body; with data, in the URL.
        let target: String
        let response: HTTPResponse
        do {
            if body.count == 0 {
                target = "/"
                var q = Array(query.utf8)
                response = try q.withUnsafeBytes { try connection.request(method: "POST", target: target, headers: headers, body: $0) }
                q.removeAll()
            } else {
                target = "/?query=" + Self.percentEncoded(query)
                response = try connection.request(method: "POST", target: target, headers: headers, body: body)
            }
        } catch {
            throw .unreachable(endpoint.description, reason: "\(error)")
        }
        guard response.status == 200 else {
            let text = response.text.trimmingCharacters(in: " \n")
            throw .refused(status: response.status, message: text)
        }
        return response.body
    }

    static func percentEncoded(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = Array("0123456789ABCDEF".unicodeScalars)
                out += "%"
                out.unicodeScalars.append(hex[Int(b >> 4)])
                out.unicodeScalars.append(hex[Int(b & 15)])
            }
        }
        return out
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
