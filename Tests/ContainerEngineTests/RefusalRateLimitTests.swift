import ContainerEngine
import Testing

/// Refusals are recorded up to a per-uid rate, the rest counted in one
/// set-suppressed record per uid and second (SPEC §6).
@Suite struct RefusalRateLimitTests {
    /// Admits `count` refusals of `uid` spread over [start, start + span) ms; returns how many were admitted.
    func refuse(
        _ limit: inout RefusalRateLimit, _ count: Int, uid: UInt32, errno: ContainerErrno = .EPERM,
        _ attempt: RegistrationAttempt = .set, at start: UInt64, span: UInt64 = 1000
    ) -> Int {
        (0..<count).filter { i in
            limit.admit(attempt, uid: uid, errno: errno, now: start + UInt64(i) * span / UInt64(count))
        }.count
    }

    @Test func twentyFiveRefusalsInOneSecondGiveTenRecordsAndOneSummaryOfFifteen() {
        var limit = RefusalRateLimit()
        #expect(refuse(&limit, 25, uid: 1000, at: 5_000) == 10)
        #expect(limit.suppressed == 15)
        // Nothing is summarized while the second lasts.
        #expect(limit.summaries(now: 5_999).isEmpty)
        #expect(limit.summaries(now: 6_000).map(\.description) == [
            "type=CONTAINER_OP op=set-suppressed uid=1000 count=15 errno=EPERM res=0"
        ])
        // Each summary once.
        #expect(limit.summaries(now: 7_000).isEmpty)
    }

    @Test func anotherUidHasItsOwnBudget() {
        var limit = RefusalRateLimit()
        #expect(refuse(&limit, 25, uid: 1000, at: 5_000, span: 500) == 10)
        #expect(refuse(&limit, 10, uid: 1001, at: 5_500, span: 400) == 10)
        #expect(limit.admit(.set, uid: 1001, errno: .EXDEV, now: 5_950) == false)
        #expect(limit.summaries(now: 6_000).map(\.description) == [
            "type=CONTAINER_OP op=set-suppressed uid=1000 count=15 errno=EPERM res=0",
            "type=CONTAINER_OP op=set-suppressed uid=1001 count=1 errno=EXDEV res=0",
        ])
        #expect(limit.suppressed == 16)
    }

    @Test func eachSecondHasAFreshBudgetAndItsOwnSummary() {
        var limit = RefusalRateLimit()
        #expect(refuse(&limit, 12, uid: 1000, at: 1_000) == 10)
        // The first refusal of the next second closes the last one's count.
        #expect(refuse(&limit, 30, uid: 1000, at: 2_000) == 10)
        #expect(refuse(&limit, 3, uid: 1000, at: 3_000) == 3)
        #expect(limit.summaries(now: 3_500).map(\.description) == [
            "type=CONTAINER_OP op=set-suppressed uid=1000 count=2 errno=EPERM res=0",
            "type=CONTAINER_OP op=set-suppressed uid=1000 count=20 errno=EPERM res=0",
        ])
        // A second without suppression has no summary.
        #expect(limit.summaries(now: 4_000).isEmpty)
        #expect(limit.suppressed == 22)
    }

    @Test func capContIDRefusalsShareTheBudgetAndAreSummarizedAsSetCapContID() {
        var limit = RefusalRateLimit()
        #expect(refuse(&limit, 8, uid: 65534, at: 0, span: 100) == 8)
        #expect(refuse(&limit, 6, uid: 65534, .capContID, at: 100, span: 100) == 2)
        #expect(refuse(&limit, 3, uid: 65534, errno: .EXDEV, at: 200, span: 100) == 0)
        #expect(refuse(&limit, 2, uid: 65534, errno: .ESRCH, at: 300, span: 100) == 0)
        #expect(limit.summaries(now: 1_000).map(\.description) == [
            // Mixed errnos: the summary names the most frequent.
            "type=CONTAINER_OP op=set-suppressed uid=65534 count=5 errno=EXDEV res=0",
            "type=SET_CAPCONTID op=capcontid-suppressed uid=65534 count=4 errno=EPERM res=0",
        ])
    }

    @Test func aClockThatGoesBackStartsANewSecond() {
        var limit = RefusalRateLimit(perSecond: 2)
        #expect(refuse(&limit, 4, uid: 0, at: 10_000, span: 100) == 2)
        #expect(refuse(&limit, 3, uid: 0, at: 9_000, span: 100) == 2)
        #expect(limit.summaries(now: 9_500).map(\.description) == [
            "type=CONTAINER_OP op=set-suppressed uid=0 count=2 errno=EPERM res=0"
        ])
        #expect(limit.summaries(now: 10_000).map(\.description) == [
            "type=CONTAINER_OP op=set-suppressed uid=0 count=1 errno=EPERM res=0"
        ])
    }

    @Test func aRateOfZeroRecordsNoRefusal() {
        var limit = RefusalRateLimit(perSecond: 0)
        #expect(refuse(&limit, 3, uid: 7, at: 0) == 0)
        #expect(limit.summaries(now: 1_000).map(\.description) == [
            "type=CONTAINER_OP op=set-suppressed uid=7 count=3 errno=EPERM res=0"
        ])
    }
}
