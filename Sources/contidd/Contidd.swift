import ArgumentParser
import AuditPipeline
import ContidDaemon
import LinuxAudit

#if canImport(Glibc)
import Glibc
#endif

@main
struct Contidd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contidd",
        abstract: "The contid daemon: audit container IDs on the live kernel.",
        discussion: """
            contidd reads the kernel audit stream (as the audit daemon, beside a running auditd, \
            or as an auditd plugin), tracks every process with the proc connector, keeps the \
            container registry, answers registrations on RUN_DIR/contid.sock, and writes the \
            host trail LOG_DIR/audit.log in auditd's format with CONTAINER_ID records attached.

            It runs in the foreground and logs to standard error. SIGTERM or SIGINT stop it \
            cleanly, restoring the kernel audit state it changed (rules, enabled, backlog \
            limit, daemon registration). SIGUSR1 logs its counters; SIGHUP reopens the log.

            Settings come from the configuration file (default /etc/contid/contidd.conf, see \
            docs/contidd.conf.md); the options below override it. Rules are read from \
            RULES_DIR/*.rules in name order, in auditctl syntax plus the contid field.
            """)

    @Option(name: .long, help: "Where records come from: auto, netlink, multicast or plugin (auto: netlink unless an audit daemon runs).")
    var source: String?

    @Option(name: .long, help: "Configuration file (default /etc/contid/contidd.conf; a missing default file is fine).")
    var config: String?

    @Option(name: .customLong("log-dir"), help: "Directory of the host trail audit.log (default /var/log/contid).")
    var logDir: String?

    @Option(name: .customLong("run-dir"), help: "Directory of the registration socket contid.sock (default /run/contid).")
    var runDir: String?

    @Option(name: .customLong("state-dir"), help: "Directory of the registry snapshot and kernel state (default /var/lib/contid).")
    var stateDir: String?

    @Option(name: .customLong("rules-dir"), help: "Directory of *.rules files in auditctl syntax (default /etc/contid/rules.d).")
    var rulesDir: String?

    @Option(name: .customLong("log-format"), help: "Host log form: raw or enriched (default raw).")
    var logFormat: String?

    @Flag(name: .customLong("check"), help: "Only read the configuration and rules, report what is wrong, and exit.")
    var check = false

    func run() throws {
        var conf = DaemonConfiguration()
        var failed = false
        let path = config ?? DaemonConfiguration.defaultPath
        do {
            if let bytes = try FileSystem.read(path) {
                for e in conf.apply(String(decoding: bytes, as: UTF8.self), file: path) {
                    stderr("contidd: \(e)")
                    failed = true
                }
            } else if config != nil {
                stderr("contidd: cannot read configuration file \(path): no such file")
                throw ExitCode(2)
            }
        } catch let e as ExitCode {
            throw e
        } catch {
            stderr("contidd: cannot read configuration file \(path): \(error)")
            throw ExitCode(2)
        }
        let overrides: [(String, String?)] = [
            ("source", source), ("log_dir", logDir), ("run_dir", runDir), ("state_dir", stateDir),
            ("rules_dir", rulesDir), ("log_format", logFormat),
        ]
        for (key, value) in overrides {
            guard let value else { continue }
            do { try conf.set(key, value) } catch {
                stderr("contidd: --\(key.replacingUnderscores): \(error.reason)")
                throw ExitCode(2)
            }
        }
        let (rules, ruleErrors) = loadRules(conf.rulesDirectory)
        for e in ruleErrors {
            stderr("contidd: \(e)")
            failed = true
        }
        if check { throw ExitCode(failed ? 1 : 0) }
        if failed { stderr("contidd: the lines above were skipped; everything else is in effect") }
        do {
            let status = try Daemon(configuration: conf).run(rules: rules)
            if status != 0 { throw ExitCode(status) }
        } catch let e as ExitCode {
            throw e
        } catch {
            stderr("contidd: \(error)")
            throw ExitCode(1)
        }
    }

    func loadRules(_ dir: String) -> ([RuleLine], [RuleError]) {
        // A missing rules directory is no rules (the built-in defaults).
        guard let names = try? FileSystem.directoryEntries(dir) else { return ([], []) }
        var lines: [RuleLine] = []
        var errors: [RuleError] = []
        for name in names where name.hasSuffix(".rules") {
            let file = "\(dir)/\(name)"
            let text: String
            do {
                guard let bytes = try FileSystem.read(file) else { continue }
                text = String(decoding: bytes, as: UTF8.self)
            } catch {
                errors.append(RuleError(file: file, line: 0, reason: "cannot read: \(error)"))
                continue
            }
            let r = RuleParser.parse(text, file: file)
            lines += r.lines
            errors += r.errors
        }
        return (lines, errors)
    }
}

func stderr(_ line: String) {
    var s = line + "\n"
    s.withUTF8 { p in _ = write(2, p.baseAddress, p.count) }
}

extension String {
    var replacingUnderscores: String { String(map { $0 == "_" ? "-" : $0 }) }
}
