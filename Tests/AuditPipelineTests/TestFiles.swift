#if canImport(Glibc)
import Glibc
#endif

/// A new directory under /tmp, `contid-NAME-XXXXXX`.
func makeTemporaryDirectory(_ name: String) -> String {
    var template = Array("/tmp/contid-\(name)-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
}

/// A file's text ("" when it cannot be read).
func fileContents(_ path: String) -> String {
    guard let f = fopen(path, "r") else { return "" }
    defer { fclose(f) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n == 0 { break }
        out += buf[..<n]
    }
    return String(decoding: out, as: UTF8.self)
}
