import Autograd
import Foundation
import HDF5
import Testing

/// Tests/Fixtures/ops.h5, written by scripts/make_fixtures.py (PyTorch references), and other
/// files of the same layout in Tests/Fixtures (e.g. transformer_ops.h5, written by
/// scripts/fixtures/make_transformer_op_fixtures.py).
enum OpFixtures {
    static let path = path(of: "ops.h5")

    /// The transformer ops of the SAM port.
    static let transformer = "transformer_ops.h5"

    /// Tests/Fixtures/<file>.
    static func path(of file: String) -> String {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/\(file)").path
    }

    /// The cases of one op: (case name, group path).
    static func cases(_ op: String, file: String = "ops.h5") throws -> [(name: String, group: String)] {
        let file = try HDF5File(path: path(of: file), mode: .read)
        return try file.children(of: "/" + op).map { ($0, "/\(op)/\($0)") }
    }

    /// One case: tensors and attributes of /op/case.
    struct Case {
        let file: HDF5File
        let group: String
        init(_ group: String, file name: String = "ops.h5") throws {
            file = try HDF5File(path: OpFixtures.path(of: name), mode: .read)
            self.group = group
        }
        func tensor(_ name: String) throws -> Tensor { try file.read("\(group)/\(name)") }
        func labels(_ name: String) throws -> LabelTensor { try file.readLabels("\(group)/\(name)") }
        func has(_ name: String) -> Bool { file.contains("\(group)/\(name)") }
        func int(_ name: String) throws -> Int { try #require(file.requiredAttribute(named: name, on: group).intValue) }
        func double(_ name: String) throws -> Double { try #require(file.requiredAttribute(named: name, on: group).doubleValue) }
        func string(_ name: String) throws -> String { try #require(file.requiredAttribute(named: name, on: group).stringValue) }
    }
}

/// max|a - b| / max|b|: the error relative to the reference's scale.
func relativeError(_ actual: Tensor, _ expected: Tensor) -> Double {
    var diff = 0.0, scale = 0.0
    for (a, b) in zip(actual.scalars, expected.scalars) {
        diff = max(diff, abs(Double(a) - Double(b)))
        scale = max(scale, abs(Double(b)))
    }
    return diff / max(scale, 1e-12)
}

/// Expects equal shapes and a relative error of at most `tolerance`.
func expectClose(
    _ actual: Tensor?, _ expected: Tensor, tolerance: Double, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let actual else {
        Issue.record("\(what): no value (gradient missing?)", sourceLocation: sourceLocation)
        return
    }
    guard actual.shape == expected.shape else {
        Issue.record("\(what): shape \(actual.shape), expected \(expected.shape)", sourceLocation: sourceLocation)
        return
    }
    let error = relativeError(actual, expected)
    #expect(error <= tolerance, "\(what): relative error \(error) > \(tolerance)", sourceLocation: sourceLocation)
}

/// Forward ≤ 1e-4 and gradients ≤ 1e-3 relative to PyTorch (the foundation issue's bar).
enum Tolerance {
    static let forward = 1e-4
    static let gradient = 1e-3
}

/// Runs `op` on leaves made from `inputs`, back-propagates the fixture's `dy` and compares the
/// output with `y` and each gradient with `d<name>`.
///
/// Every input needs its `d<name>` dataset: a missing one is a test failure naming the dataset
/// (a fixture script that forgot a gradient must not pass silently), unless the input is listed
/// in `withoutGradient` (an input PyTorch gives no gradient, such as integer labels or a
/// constant); for those the fixture must have no `d<name>` either.
func expectParity(
    _ fixture: OpFixtures.Case, inputs names: [String], withoutGradient: Set<String> = [], caseName: String,
    sourceLocation: SourceLocation = #_sourceLocation, _ op: ([Tensor]) -> Tensor
) throws {
    precondition(
        withoutGradient.isSubset(of: names), "expectParity: withoutGradient \(withoutGradient) not among the inputs \(names)")
    let leaves = try names.map { try fixture.tensor($0).requiringGrad() }
    let y = op(leaves)
    expectClose(y, try fixture.tensor("y"), tolerance: Tolerance.forward, "\(caseName) y", sourceLocation: sourceLocation)
    y.backward(gradient: try fixture.tensor("dy"))
    for (name, leaf) in zip(names, leaves) {
        let dataset = "\(fixture.group)/d\(name)"
        if withoutGradient.contains(name) {
            if fixture.has("d" + name) {
                Issue.record(
                    "\(caseName): \(dataset) exists but input \(name) is declared without gradient",
                    sourceLocation: sourceLocation)
            }
            continue
        }
        guard fixture.has("d" + name) else {
            Issue.record(
                "\(caseName): gradient fixture \(dataset) missing in \(fixture.file.path) for input \(name)",
                sourceLocation: sourceLocation)
            continue
        }
        expectClose(
            leaf.grad, try fixture.tensor("d" + name), tolerance: Tolerance.gradient, "\(caseName) d\(name)",
            sourceLocation: sourceLocation)
    }
}
