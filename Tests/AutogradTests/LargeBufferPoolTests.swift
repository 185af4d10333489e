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

    /// `releaseParkedBuffers` empties the pool while the scope stays open: later frees park again.
    @Test func releasingParkedBuffersKeepsTheScope() {
        // A size no other test allocates.
        let count = LargeBufferPool.minimumBytes / MemoryLayout<Float>.stride + 4099
        let bytes = count * MemoryLayout<Float>.stride
        TensorStorage.reusingLargeBuffers {
            var buffer: TensorStorage? = TensorStorage(count: count, zeroed: false)
            buffer = nil
            #expect(LargeBufferPool.shared.parkedCount(bytes: bytes) == 1)
            TensorStorage.releaseParkedBuffers()
            #expect(LargeBufferPool.shared.parkedCount(bytes: bytes) == 0)
            buffer = TensorStorage(count: count, zeroed: false)
            buffer = nil
            #expect(LargeBufferPool.shared.parkedCount(bytes: bytes) == 1, "parking goes on")
            _ = buffer
        }
    }
}
