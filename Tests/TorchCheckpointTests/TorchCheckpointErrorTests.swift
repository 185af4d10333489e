import Testing

@testable import TorchCheckpoint

@Suite struct TorchCheckpointErrorTests {
    @Test func messagesNameTheFileAndTheProblem() {
        let forbidden = TorchCheckpointError.forbiddenGlobal(path: "/tmp/evil.pth", name: "os.system")
        #expect(forbidden.localizedDescription.contains("/tmp/evil.pth"))
        #expect(forbidden.localizedDescription.contains("os.system"))
        #expect(TorchCheckpointError.notZip(path: "old.pth").localizedDescription.hasPrefix("old.pth: not a zip archive"))
    }
}
