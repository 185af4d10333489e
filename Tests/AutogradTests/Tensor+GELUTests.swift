import Autograd
import Testing

/// Parity fixture: scripts/fixtures/make_transformer_op_fixtures.py, gelu_cases (torch default,
/// approximate="none").
@Suite struct GELUTests {
    @Test func matchesPyTorch() throws {
        try expectParity(try OpFixtures.Case("/gelu/spread", file: OpFixtures.transformer), inputs: ["x"], caseName: "gelu") {
            t in
            t[0].gelu()
        }
    }

    @Test func finiteDifferences() {
        checkGradients([randn([4, 7], seed: 1, scale: 2)]) { t in t[0].gelu() }
    }
}
