import AuditCodec
import AuditPipeline
import LinuxAudit

// What contidd changes in the kernel's audit configuration, and how it puts it
// back: enabled, the registered daemon pid, backlog_limit and the rules it
// added or deleted. The state as found is kept on disk (STATE_DIR/kernel.state)
// so that after a kill -9 the next contidd still restores what the first found.

final class KernelAuditSession {
    let control: AuditNetlink
    let statePath: String
    /// The status before contidd changed anything (from kernel.state after a crash).
    private(set) var found: AuditStatus
    private(set) var added: [AuditRule] = []
    private(set) var deleted: [AuditRule] = []
    private(set) var registered = false
    private var changedEnabled = false
    private var changedBacklog = false

    init(control: AuditNetlink, stateDirectory: String) throws {
        self.control = control
        self.statePath = stateDirectory + "/kernel.state"
        found = try control.status()
        if let leftover = Self.load(statePath) {
            Log.warning("\(statePath): a previous contidd did not stop cleanly; undoing its \(leftover.added.count) rules")
            for rule in leftover.added.reversed() { try? control.deleteRule(rule) }
            for rule in leftover.deleted { try? control.addRule(rule) }
            if leftover.enabled != found.enabled, leftover.enabled <= 1 { try? control.setEnabled(leftover.enabled == 1) }
            if leftover.backlogLimit != found.backlogLimit { try? control.setBacklogLimit(leftover.backlogLimit) }
            found = try control.status()
        }
        guard found.enabled != 2 else {
            throw DaemonError.auditLocked
        }
    }

    /// Registers `reader` as the audit daemon (netlink source), enabling audit as auditd does.
    func becomeAuditDaemon(reader: AuditNetlink, otherMessages: @escaping (AuditNetlinkMessage) -> Void) throws {
        try reader.register(otherMessages: otherMessages)
        registered = true
        if found.enabled == 0 {
            try control.setEnabled(true)
            changedEnabled = true
        }
        try save()
    }

    func setBacklogLimit(_ limit: UInt32) throws {
        guard limit != 0, limit != found.backlogLimit else { return }
        try control.setBacklogLimit(limit)
        changedBacklog = true
        try save()
    }

    /// Loads the rules: the user's in order (`-D` deletes what is there first), then
    /// the self-exclusion rule at the head, then contid's `tracking` rules appended
    /// after them (the kernel reports the key of the first matching exit rule).
    func loadRules(_ lines: [RuleLine], backlog: inout UInt32, tracking: TrackingRules) throws -> ContainerRuleFilter {
        var filter = ContainerRuleFilter()
        for line in lines {
            switch line.command {
            case .deleteAll:
                for rule in try control.listRules() where !added.contains(rule) {
                    try control.deleteRule(rule)
                    deleted.append(rule)
                }
                try save()
            case .backlogLimit(let n):
                backlog = n
            case let .add(parsed, prepend):
                let rule = parsed.rule.watchingDirectories(where: FileSystem.isDirectory)
                do {
                    try control.addRule(rule, prepend: prepend)
                    added.append(rule)
                    try save()
                } catch LinuxAuditError.rejected(_, let e) where e == .fileExists {
                    Log.warning("\(line.file):\(line.line): the kernel has this rule already; left as it is")
                } catch {
                    throw DaemonError.ruleRefused(file: line.file, line: line.line, error)
                }
                filter.add(parsed)
            }
        }
        var exclusion = AuditRule.selfExclusion()
        do {
            try addOwn(exclusion, prepend: true)
        } catch where exclusion.fields.count > 1 {
            Log.warning("the kernel refused the self-exclusion rule with -F exe= (\(error)); using -F pid= alone")
            exclusion = AuditRule.selfExclusion(executable: nil)
            try addOwn(exclusion, prepend: true)
        }
        selfExclusion = exclusion
        switch tracking {
        case .none: trackingRules = []
        case .namespaces: trackingRules = AuditRule.namespaceTracking()
        case .all: trackingRules = AuditRule.fullTracking()
        }
        for rule in trackingRules { try addOwn(rule, prepend: false) }
        return filter
    }

    /// contidd's self-exclusion rule (at the head of the exit list) and tracking rules
    /// (at its end: the kernel reports the key of the first matching exit rule).
    private(set) var selfExclusion: AuditRule?
    private(set) var trackingRules: [AuditRule] = []
    /// Times the tracking rules were moved back to the end, and rules put back after
    /// someone deleted them.
    private(set) var trackingRuleMoves = 0
    private(set) var ownRulesRestored = 0

    /// Keeps contidd's rules where they must be: the self-exclusion rule present (put
    /// back at the head after `auditctl -D`), the tracking rules last among the exit
    /// rules (a rule appended after them would have its events keyed contid-track).
    func maintainOwnRules() throws {
        guard let exclusion = selfExclusion else { return }
        let exitRules = try control.listRules().filter { $0.list == .exit }
        var reAppend = false
        if !exitRules.contains(exclusion) {
            try? control.addRule(exclusion, prepend: true)
            ownRulesRestored += 1
            Log.warning("contidd's self-exclusion rule was deleted; added again")
            reAppend = !trackingRules.isEmpty
        }
        if !trackingRules.isEmpty, !reAppend {
            if let last = exitRules.lastIndex(where: { trackingRules.contains($0) }) {
                reAppend = exitRules[(last + 1)...].contains { !trackingRules.contains($0) && $0 != exclusion }
                    || trackingRules.contains { !exitRules.contains($0) }
                if reAppend {
                    trackingRuleMoves += 1
                    Log.info("a rule was added after contidd's tracking rules; moving them to the end (\(trackingRuleMoves) moves)")
                }
            } else {
                reAppend = true
                ownRulesRestored += 1
                Log.warning("contidd's tracking rules were deleted; added again")
            }
        }
        guard reAppend else { return }
        for rule in trackingRules {
            do { try control.deleteRule(rule) } catch LinuxAuditError.rejected(_, let e) where e == .noSuchFileOrDirectory {}
        }
        for rule in trackingRules { try control.addRule(rule, prepend: false) }
    }

    private func addOwn(_ rule: AuditRule, prepend: Bool) throws {
        do {
            try control.addRule(rule, prepend: prepend)
        } catch LinuxAuditError.rejected(_, let e) where e == .fileExists {
            // Left by a contidd that was killed; it is ours, deleted on exit.
        }
        added.append(rule)
        try save()
    }

    /// Undoes everything: rules, registration, enabled, backlog. `beforeUnregister`
    /// runs after the rules are gone and before the registration ends (to read the
    /// last records). Errors are logged; the rest is still attempted.
    func restore(reader: AuditNetlink?, beforeUnregister: () -> Void) {
        for rule in added.reversed() {
            do { try control.deleteRule(rule) } catch LinuxAuditError.rejected(_, let e) where e == .noSuchFileOrDirectory {
            } catch { Log.error("deleting rule \(rule): \(error)") }
        }
        for rule in deleted {
            do { try control.addRule(rule) } catch { Log.error("putting back rule \(rule): \(error)") }
        }
        beforeUnregister()
        if registered, let reader {
            do { try reader.unregister(otherMessages: { _ in }) } catch { Log.error("unregistering: \(error)") }
        }
        if changedBacklog {
            do { try control.setBacklogLimit(found.backlogLimit) } catch { Log.error("restoring backlog_limit: \(error)") }
        }
        if changedEnabled, found.enabled <= 1 {
            do { try control.setEnabled(found.enabled == 1) } catch { Log.error("restoring enabled: \(error)") }
        }
        try? FileSystem.remove(statePath)
    }

    // MARK: kernel.state

    struct Saved {
        var enabled: UInt32
        var backlogLimit: UInt32
        var added: [AuditRule]
        var deleted: [AuditRule]
    }

    private func save() throws {
        var text = "# contidd: kernel audit state as found, and what contidd changed; removed on a clean stop\n"
        text += "enabled \(found.enabled)\nbacklog_limit \(found.backlogLimit)\n"
        for r in added { text += "added \(AuditText.hex(r.encoded()))\n" }
        for r in deleted { text += "deleted \(AuditText.hex(r.encoded()))\n" }
        try FileSystem.writeAtomically(Array(text.utf8), to: statePath)
    }

    static func load(_ path: String) -> Saved? {
        guard let bytes = try? FileSystem.read(path) else { return nil }
        var saved = Saved(enabled: 0, backlogLimit: 0, added: [], deleted: [])
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "enabled": saved.enabled = UInt32(parts[1]) ?? 0
            case "backlog_limit": saved.backlogLimit = UInt32(parts[1]) ?? 0
            case "added", "deleted":
                guard let raw = AuditText.unhex(Array(parts[1].utf8)),
                      let rule = raw.withUnsafeBytes({ try? AuditRule(decoding: $0) }) else { continue }
                if parts[0] == "added" { saved.added.append(rule) } else { saved.deleted.append(rule) }
            default: continue
            }
        }
        return saved
    }
}

