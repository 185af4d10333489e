import Foundation
import XCTest

@testable import DenseCRF

/// FastExp against Double exp over the softmax's range [-87, 0] (and its clamp below).
final class FastExpTests: XCTestCase {
    func testRelativeErrorIsAFewUlps() {
        let count = 20_003
        var x = (0..<count).map { Float(-87.0 * Double($0) / Double(count - 1)) }
        x[17] = -120  // clamped to -87
        let input = x
        x.withUnsafeMutableBufferPointer { FastExp.expInPlace($0.baseAddress!, count: count) }
        var worst = 0.0
        for i in 0..<count where i != 17 {
            let exact = Foundation.exp(Double(input[i]))
            worst = max(worst, abs(Double(x[i]) - exact) / exact)
        }
        XCTAssertLessThan(worst, 5e-7, "max relative error \(worst)")
        XCTAssertEqual(Double(x[17]), Foundation.exp(-87.0), accuracy: 1e-43)
        XCTAssertEqual(x[0], 1)
    }
}
