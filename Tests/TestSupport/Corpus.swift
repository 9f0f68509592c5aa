import Foundation

/// The shared corpus of real audit logs: `<repo>/../shared/corpus`, or $CONTID_CORPUS.
public enum Corpus {
    public static let root: URL = {
        if let env = ProcessInfo.processInfo.environment["CONTID_CORPUS"] { return URL(fileURLWithPath: env) }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("shared/corpus")
    }()

    /// Every log file of the corpus (README files are prose, not logs), relative paths, sorted.
    public static var logFiles: [String] {
        let e = FileManager.default.enumerator(atPath: root.path)!
        var out: [String] = []
        while let p = e.nextObject() as? String {
            var isDir: ObjCBool = false
            FileManager.default.fileExists(atPath: root.appendingPathComponent(p).path, isDirectory: &isDir)
            if !isDir.boolValue, !(p as NSString).lastPathComponent.hasPrefix("README") { out.append(p) }
        }
        return out.sorted()
    }

    public static func lines(_ path: String) throws -> [[UInt8]] {
        let data = try Data(contentsOf: root.appendingPathComponent(path))
        var lines = Array(data).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }
}
