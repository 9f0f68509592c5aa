import AuditCodec
import AuditPipeline
import ContainerEngine
import Glibc
import Testing

/// What `ContainerRuleFilter` lets through: a contid rule keeps only its containers events for its key.
@Suite struct RuleFilterTests {
    func filter(_ text: String) -> ContainerRuleFilter {
        var filter = ContainerRuleFilter()
        let (lines, errors) = RuleParser.parse(text, file: "f")
        #expect(errors.isEmpty)
        for line in lines {
            if case let .add(rule, _) = line.command { filter.add(rule) }
        }
        return filter
    }

    /// A rule without contid sharing its key with a contid rule admits every chain,
    /// whichever comes first in the file.
    @Test func plainRuleSharingAKeyWithAContidRuleIsNotFiltered() {
        for text in ["-a always,exit -S openat -F contid=7 -k shared\n-w /etc/passwd -p wa -k shared\n",
                     "-w /etc/passwd -p wa -k shared\n-a always,exit -S openat -F contid=7 -k shared\n"] {
            let f = filter(text)
            #expect(f.admits(key: "shared", chain: ContainerChain([8])), "\(text)")
            #expect(f.admits(key: "shared", chain: .unset), "\(text)")
            #expect(f.admits(key: "shared", chain: ContainerChain([7])), "\(text)")
        }
        // Without the plain rule the key is filtered.
        let only = filter("-a always,exit -S openat -F contid=7 -k shared\n-w /etc/passwd -p wa -k other\n")
        #expect(!only.admits(key: "shared", chain: .unset))
        #expect(only.admits(key: "other", chain: .unset))
    }
}
