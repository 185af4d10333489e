import Testing

@testable import Autograd

@Suite struct LargeBufferPoolTests {
    /// Inside a scope a freed large buffer serves the next allocation of its size (zero-filled
    /// again when asked), and a buffer of another size is not. (Nothing is checked outside the
    /// scope: SAM tests running in parallel may have their own scope open.)
    @Test func reusesLargeBuffersOnlyInsideAScope() {
        let count = LargeBufferPool.minimumBytes / MemoryLayout<Float>.stride
        TensorStorage.reusingLargeBuffers {
            var first: TensorStorage? = TensorStorage(count: count, zeroed: false)
            let address = first!.base
            first!.base[count - 1] = 7
            first = nil
            let second = TensorStorage(count: count, zeroed: true)
            #expect(second.base == address)
            #expect(second.base[count - 1] == 0)
            let other = TensorStorage(count: count + 16, zeroed: false)
            #expect(other.base != address)
        }
    }
}
