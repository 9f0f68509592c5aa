#if canImport(Glibc)
import Glibc
#endif

/// A new directory under /tmp, `contid-NAME-XXXXXX`.
public func makeTemporaryDirectory(_ name: String) -> String {
    var template = Array("/tmp/contid-\(name)-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
}

/// Removes a directory tree made by a test.
public func removeTree(_ path: String) {
    guard path.hasPrefix("/tmp/contid-") else { return }
    var argv: [UnsafeMutablePointer<CChar>?] = ["/bin/rm", "-rf", path].map { (s: String) in strdup(s) } + [nil]
    defer { for p in argv { free(p) } }
    var pid: pid_t = 0
    guard posix_spawn(&pid, "/bin/rm", nil, nil, &argv, environ) == 0 else { return }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
}

/// A file's text ("" when it cannot be read).
public func fileContents(_ path: String) -> String {
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
