import Foundation
import Testing

/// `contid hook-config` as an admin runs it: JSON that runc and podman read as it stands.
@Suite struct HookConfigCommandTests {
    let contid = ReplayCommandTests.binary

    func config(_ args: [String]) throws -> [String: Any] {
        let r = try ReplayCommandTests().run(["hook-config"] + args)
        #expect(r.status == 0, "\(r.err)")
        return try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], "\(r.out)")
    }

    @Test func runcSnippetIsAHooksObjectNamingContidByItsAbsolutePathWithRunDirAndTimeout() throws {
        let c = try config(["--runtime", "runc", "--run-dir", "/run/x y"])
        let hooks = try #require(c["hooks"] as? [String: Any])
        #expect(Array(hooks.keys) == ["createRuntime"])
        let entry = try #require((hooks["createRuntime"] as? [[String: Any]])?.first)
        let path = try #require(entry["path"] as? String)
        #expect(path.hasPrefix("/") && path == contid.resolvingSymlinksInPath().path)
        #expect(entry["args"] as? [String] == ["contid", "oci-hook", "--stage", "createRuntime", "--run-dir", "/run/x y"])
        #expect(entry["timeout"] as? Int == 10)
    }

    @Test func podmanFileRunsAtCreateRuntimeForEveryContainerAndOptionalIsAnArgument() throws {
        let c = try config(["--runtime", "podman", "--optional", "--timeout", "7", "--run-dir", "rel/run"])
        #expect(c["version"] as? String == "1.0.0")
        #expect((c["when"] as? [String: Any])?["always"] as? Bool == true)
        #expect(c["stages"] as? [String] == ["createRuntime"])
        let hook = try #require(c["hook"] as? [String: Any])
        let args = try #require(hook["args"] as? [String])
        #expect(args.last == "--optional")
        // A relative run directory is made absolute: the runtime runs the hook elsewhere.
        #expect(args[5] == FileManager.default.currentDirectoryPath + "/rel/run")
        #expect(hook["timeout"] as? Int == 7)
    }

    @Test func unknownRuntimeAndZeroTimeoutAreRefused() throws {
        let a = try ReplayCommandTests().run(["hook-config", "--runtime", "docker"])
        #expect(a.status != 0 && a.err.contains("docker"))
        let b = try ReplayCommandTests().run(["hook-config", "--runtime", "runc", "--timeout", "0"])
        #expect(b.status != 0 && b.err.contains("the timeout is a number of seconds above 0"))
    }
}
