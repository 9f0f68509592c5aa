import ContainerEngine
import Testing

/// The OCI state a runtime writes to a hook's stdin, and the registration made of it (SPEC §9).
@Suite struct OCIStateTests {
    private func parse(_ text: String) throws(OCIStateError) -> OCIState { try OCIState(parsing: Array(text.utf8)) }

    @Test func runcsStateWithoutAnnotationsParses() throws {
        // As runc 1.1 writes it (no trailing newline, no annotations key).
        let s = try parse(#"{"ociVersion":"1.0.2-dev","id":"t1","status":"creating","pid":13501,"bundle":"/tmp/b"}"#)
        #expect(s == OCIState(id: "t1", status: "creating", pid: 13501, bundle: "/tmp/b", ociVersion: "1.0.2-dev"))
        #expect(s.containerIDText == "e618904c-2857-5b1f-b97f-8cbf5f28d82b")
        #expect(s.labels(runtime: "runc").map { "\($0.key)=\($0.value)" } == ["runtime=runc", "id=t1", "bundle=/tmp/b"])
    }

    @Test func theIDAnnotationWinsAsWritten() throws {
        let s = try parse(#"{"ociVersion":"1.0.2","id":"web","status":"creating","pid":7,"bundle":"/b","annotations":{"org.contid.id":"123456"}}"#)
        #expect(s.containerIDText == "123456")
        let unset = try parse(#"{"ociVersion":"1.0.2","id":"web","status":"creating","pid":7,"bundle":"/b","annotations":{"org.contid.id":"-1"}}"#)
        #expect(unset.containerIDText == "-1")  // contidd refuses it with EINVAL and records the attempt
    }

    @Test func podmansStateGivesTheFirstHalfOfItsID() throws {
        let s = try parse(#"""
            {"ociVersion":"1.0.2-dev","id":"e02271d0904de3ed844ff4a20f6d46aa6fa0bbdff27bd472d951c531400aaf43","status":"creating","pid":13598,"bundle":"/var/lib/containers/storage/overlay-containers/e022/userdata","annotations":{"io.container.manager":"libpod","io.podman.annotations.autoremove":"TRUE"}}
            """#)
        #expect(s.containerIDText == "e02271d0-904d-e3ed-844f-f4a20f6d46aa")
    }

    @Test func kubernetesAnnotationsGiveNameImageAndPodAndUserLabelsFollowSorted() throws {
        let s = OCIState(id: "abc", status: "creating", pid: 9, bundle: "/run/b", annotations: [
            "io.kubernetes.container.name": "web", "org.contid.name": "ignored",
            "io.kubernetes.cri.image-name": "registry/app:1.2", "org.opencontainers.image.ref.name": "ignored",
            "io.kubernetes.pod.namespace": "prod", "io.kubernetes.pod.name": "web-7d9", "io.kubernetes.pod.uid": "u-1",
            "org.contid.label.tier": "front", "org.contid.label.team": "payments",
            "org.contid.label.runtime": "forged", "org.contid.label.": "empty key",
        ])
        #expect(s.labels(runtime: "crun").map { "\($0.key)=\($0.value)" } == [
            "runtime=crun", "id=abc", "bundle=/run/b", "name=web", "image=registry/app:1.2", "pod=prod/web-7d9",
            "pod-uid=u-1", "team=payments", "tier=front",
        ])
        #expect(s.userLabelKeys == ["runtime", "team", "tier"])
    }

    @Test func fallbackAnnotationsNameAndImageAndAPodWithoutNamespace() throws {
        let s = OCIState(id: "abc", status: "creating", pid: 9, bundle: nil, annotations: [
            "org.contid.name": "db", "org.opencontainers.image.ref.name": "busybox", "io.kubernetes.pod.name": "p",
        ])
        #expect(s.labels(runtime: nil).map { "\($0.key)=\($0.value)" } == ["id=abc", "name=db", "image=busybox", "pod=p"])
    }

    @Test(arguments: [
        ("", "no OCI state on standard input (a runtime writes the state JSON there)"),
        ("{\"id\":\"x\",\"status\":", "the OCI state is not valid JSON"),
        ("{\"status\":\"creating\"}", "the OCI state has no \"id\""),
        ("{\"id\":\"x\"}", "the OCI state has no \"status\""),
        ("{\"id\":\"x\",\"status\":\"creating\",\"pid\":\"12\"}", "the OCI state's \"pid\" has the wrong type"),
        ("{\"id\":\"x\",\"status\":\"creating\",\"pid\":0}", "the OCI state's pid 0 is not a process ID"),
        ("{\"id\":\"x\",\"status\":\"creating\",\"annotations\":{\"a\":1}}", "the OCI state's \"annotations.a\" has the wrong type"),
    ])
    func badStateIsAClearError(text: String, message: String) {
        do {
            _ = try parse(text)
            Issue.record("\(text) parsed")
        } catch {
            #expect(error.reason.hasPrefix(message), "\(error.reason)")
        }
    }
}

@Suite struct OCICapabilitiesTests {
    @Test func namesFollowTheKernelsBitOrder() {
        #expect(OCICapabilities.all.count == 41)
        #expect(OCICapabilities.names(in: 1 << 21 | 1 << 30 | 1) == ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_AUDIT_CONTROL"])
        // This VM's bounding set: all but CAP_SYS_RESOURCE (24).
        #expect(!OCICapabilities.names(in: 0x1_fffe_ffffff).contains("CAP_SYS_RESOURCE"))
        #expect(OCICapabilities.names(in: 0x1_fffe_ffffff).count == 40)
    }
}
