import Autograd
import Testing

/// The parity helper itself: a gradient the fixture lacks must fail the test, not pass silently.
@Suite struct ExpectParityTests {
    // /relu/nchw holds x, y, dy and dx (scripts/make_fixtures.py). Passing its `dy` as a second,
    // unused input makes an input whose gradient dataset (`ddy`) does not exist.
    @Test func missingGradientFixtureIsAFailure() throws {
        let fixture = try OpFixtures.Case("/relu/nchw")
        try withKnownIssue {
            try expectParity(fixture, inputs: ["x", "dy"], caseName: "relu") { t in t[0].relu() }
        } matching: { issue in
            issue.comments.contains { $0.rawValue.contains("/relu/nchw/ddy missing") }
        }
    }

    @Test func inputDeclaredWithoutGradientNeedsNoFixture() throws {
        let fixture = try OpFixtures.Case("/relu/nchw")
        try expectParity(fixture, inputs: ["x", "dy"], withoutGradient: ["dy"], caseName: "relu") { t in t[0].relu() }
    }

    @Test func gradientFixtureForAnInputDeclaredWithoutGradientIsAFailure() throws {
        let fixture = try OpFixtures.Case("/relu/nchw")
        try withKnownIssue {
            try expectParity(fixture, inputs: ["x"], withoutGradient: ["x"], caseName: "relu") { t in t[0].relu() }
        } matching: { issue in
            issue.comments.contains { $0.rawValue.contains("declared without gradient") }
        }
    }
}
