import ArgumentParser
import AuditPipeline
import LinuxAudit

#if canImport(Glibc)
import Glibc
#endif

// contid hook-config: the installation of `contid oci-hook` as each runtime family
// reads it, printed so that it works as it stands: contid by its absolute path, the
// run directory and a timeout in the hook's own entry.

struct HookConfigCommand: ParsableCommand {
    enum Runtime: String, ExpressibleByArgument, CaseIterable {
        /// runc and crun: the `hooks` object of a bundle's config.json.
        case runc
        /// podman and CRI-O: a hooks.d file (oci-hooks(5), schema 1.0.0).
        case podman
    }

    static let configuration = CommandConfiguration(
        commandName: "hook-config",
        abstract: "Print the installation of contid's OCI hook for runc/crun (config.json) or podman/CRI-O (hooks.d).",
        discussion: """
            --runtime runc prints the "hooks" object to put into a bundle's config.json (runc, \
            crun), e.g. jq --argjson h "$(contid hook-config --runtime runc)" '. + $h' config.json. \
            --runtime podman prints a hooks.d file (podman, CRI-O) that runs the hook at \
            createRuntime for every container: save it as \
            /etc/containers/oci/hooks.d/50-contid.json, or in a directory given to \
            podman --hooks-dir DIR. The hook names this contid by its absolute path and carries \
            the run directory (--run-dir, else $CONTID_RUN_DIR, else /run/contid) and a timeout. \
            Fail-closed is the default: a container that cannot be registered does not start. \
            --optional installs the hook so that it warns and lets the container start without \
            an ID instead.
            """)

    @Option(help: "The runtime family: runc (runc, crun: config.json) or podman (podman, CRI-O: hooks.d).")
    var runtime: Runtime
    @Flag(help: "Install the hook to warn and exit 0 when registration fails, instead of stopping the container.")
    var optional = false
    @OptionGroup var daemon: DaemonSocketOptions
    @Option(help: "Seconds the runtime gives the hook before it kills it and fails the container.")
    var timeout: Int = 10

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("the timeout is a number of seconds above 0") }
    }

    func run() throws {
        let path: String
        do { path = try ProcFS().executable(pid: getpid()) } catch {
            throw ValidationError("cannot resolve contid's own path from /proc/self/exe: \(error)")
        }
        print(Self.render(runtime: runtime, contid: path, runDir: absolute(daemon.client.runDir), optional: optional,
                          timeout: timeout))
    }

    private func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/" + path
    }

    /// The JSON text, two-space indented.
    static func render(runtime: Runtime, contid: String, runDir: String, optional: Bool, timeout: Int) -> String {
        var args = ["contid", "oci-hook", "--stage", "createRuntime", "--run-dir", runDir]
        if optional { args.append("--optional") }
        let argsJSON = "[" + args.map(json).joined(separator: ", ") + "]"
        switch runtime {
        case .runc:
            return """
                {
                  "hooks": {
                    "createRuntime": [
                      {
                        "path": \(json(contid)),
                        "args": \(argsJSON),
                        "timeout": \(timeout)
                      }
                    ]
                  }
                }
                """
        case .podman:
            return """
                {
                  "version": "1.0.0",
                  "hook": {
                    "path": \(json(contid)),
                    "args": \(argsJSON),
                    "timeout": \(timeout)
                  },
                  "when": {
                    "always": true
                  },
                  "stages": ["createRuntime"]
                }
                """
        }
    }

    /// A JSON string literal.
    static func json(_ s: String) -> String {
        var out = ""
        EventJSON.appendString(s, to: &out)
        return out
    }
}
