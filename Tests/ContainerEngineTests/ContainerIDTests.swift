import ContainerEngine
import PropertyBased
import Testing

@Suite struct ContainerIDTests {
    @Test func decimalBelowTwoToTheSixtyFourMinusOneParsesAndPrintsAsDecimal() throws {
        #expect(try ContainerID(parsing: "123456").description == "123456")
        #expect(try ContainerID(parsing: "0").description == "0")
        #expect(try ContainerID(parsing: "18446744073709551614").description == "18446744073709551614")
        #expect(try ContainerID(parsing: "123456\n") == 123456)
    }

    @Test func canonicalUUIDInEitherCasePrintsLowerCase() throws {
        let id = try ContainerID(parsing: "6F9619FF-8B86-D011-B42D-00C04FC964FF")
        #expect(id.description == "6f9619ff-8b86-d011-b42d-00c04fc964ff")
        #expect(id.high == 0x6f96_19ff_8b86_d011 && id.low == 0xb42d_00c0_4fc9_64ff)
        #expect(try ContainerID(parsing: "6f9619ff8b86d011b42d00c04fc964ff") == id)
    }

    @Test func uuidWithZeroUpperHalfPrintsAsDecimal() throws {
        #expect(try ContainerID(parsing: "00000000-0000-0000-0000-00000001e240").description == "123456")
    }

    @Test(arguments: ["-1", "unset", "18446744073709551615", "00000000-0000-0000-ffff-ffffffffffff"])
    func unsetSpellingsAreUnsetAttemptsFailingWithEINVAL(text: String) throws {
        #expect(try ContainerID.parseRequest(text) == nil)
        #expect(throws: ContainerFailure(.EINVAL, "a container ID cannot be unset (-1, unset and 18446744073709551615 all mean unset)")) {
            try ContainerID(parsing: text)
        }
    }

    @Test func malformedInputFailsWithEINVALNamingTheAcceptedForms() {
        #expect(throws: ContainerFailure(.EINVAL, "\"12ab\" is not a container ID (not a decimal number); a container ID is a UUID (8-4-4-4-12 hex digits), 32 hex digits, or a decimal number below 18446744073709551615")) {
            try ContainerID(parsing: "12ab")
        }
        #expect(throws: ContainerFailure(.EINVAL, "\"18446744073709551616\" is not a container ID (decimal too large); a container ID is a UUID (8-4-4-4-12 hex digits), 32 hex digits, or a decimal number below 18446744073709551615")) {
            try ContainerID(parsing: "18446744073709551616")
        }
        #expect((try? ContainerID(parsing: "")) == nil)
        #expect((try? ContainerID(parsing: "6f9619ff-8b86-d011-b42d+00c04fc964ff")) == nil)
        #expect((try? ContainerID(parsing: "+5")) == nil)
    }

    @Test func failureMessageNamesTheErrnoFirst() {
        let f = ContainerFailure(.EBUSY, "process 812 has 1 child; register a container's first process before it forks")
        #expect(f.description == "EBUSY: process 812 has 1 child; register a container's first process before it forks")
        #expect(ContainerErrno.ENOTUNIQ.rawValue == 76 && ContainerErrno.EXDEV.rawValue == 18)
    }

    @Test func chainPrintsInnermostFirstAndUnsetAsMinusOne() throws {
        #expect(ContainerChain([4, 2, 1]).description == "4,^2,^1")
        #expect(ContainerChain.unset.description == "-1")
        #expect(try ContainerChain(parsing: "4,^2,^1") == ContainerChain([4, 2, 1]))
        #expect(try ContainerChain(parsing: "-1") == .unset)
        #expect(try ContainerChain.parseList("2,^1,3,^1") == [ContainerChain([2, 1]), ContainerChain([3, 1])])
        #expect((try? ContainerChain(parsing: "^2")) == nil)
        #expect((try? ContainerChain(parsing: "2,3")) == nil)
    }

    @Test func printThenParseGivesTheSameID() async {
        await propertyCheck(count: 500, input: Gen.uint64(in: 0...3), Gen.uint64(in: 0...UInt64.max)) { high, low in
            guard let id = ContainerID(high: high == 3 ? low &* 31 : high, low: low) else { return }
            #expect((try? ContainerID(parsing: id.description)) == id)
            #expect((try? ContainerChain(parsing: ContainerChain([id, 7]).description)) == ContainerChain([id, 7]))
        }
    }
}

@Suite struct ContainerPredicateTests {
    @Test func equalMatchesAnyElementOfTheChain() throws {
        let p = try ContainerPredicate(.equal, parsing: "2")
        #expect(p.matches(ContainerChain([4, 2, 1])))
        #expect(!p.matches(ContainerChain([3, 1])))
        #expect(!p.matches(.unset))
        #expect(p.description == "contid=2")
    }

    @Test func notEqualMatchesWhenNoElementIs() throws {
        let p = ContainerPredicate(.notEqual, 1)
        #expect(!p.matches(ContainerChain([4, 2, 1])))
        #expect(p.matches(ContainerChain([5])))
        #expect(p.matches(.unset))
    }

    @Test func unsetMatchesTasksWithoutAnID() throws {
        let isUnset = try ContainerPredicate(.equal, parsing: "unset")
        let isSet = try ContainerPredicate(.notEqual, parsing: "-1")
        #expect(isUnset.matches(.unset) && !isUnset.matches(ContainerChain([5])))
        #expect(isSet.matches(ContainerChain([5])) && !isSet.matches(.unset))
        #expect(isSet.description == "contid!=unset")
    }
}
