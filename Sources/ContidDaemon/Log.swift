import Glibc

/// contidd logs to standard error, one line per message.
enum Log {
    static func info(_ message: String) { emit("contidd: \(message)\n") }
    static func warning(_ message: String) { emit("contidd: warning: \(message)\n") }
    static func error(_ message: String) { emit("contidd: error: \(message)\n") }
    private static func emit(_ s: String) {
        var s = s
        s.withUTF8 { p in _ = write(2, p.baseAddress, p.count) }
    }
}
