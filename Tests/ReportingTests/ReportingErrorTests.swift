import Testing

@testable import Reporting

@Suite struct ReportingErrorTests {
    @Test func namesTheFile() {
        #expect(
            ReportingError.writeFailed(path: "runs/x/events.out", reason: "disk full").localizedDescription
                == "runs/x/events.out: cannot write: disk full")
    }
}
