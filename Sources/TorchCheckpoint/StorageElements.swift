import Autograd

/// Reading storage bytes as Float32: one element type per conformance, so that `gather` is
/// specialised per type and its inner loop has no switch. Loads are unaligned: older torch did not
/// align storages inside the archive.
protocol StoredElement {
    static func load(_ p: UnsafeRawPointer) -> Float
}

enum Float32Element: StoredElement {
    static func load(_ p: UnsafeRawPointer) -> Float { Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))) }
}

enum Float16Element: StoredElement {
    static func load(_ p: UnsafeRawPointer) -> Float { floatFromHalf(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self))) }
}

/// bfloat16 is the upper half of a float32 (same exponent), so widening is a shift.
enum BFloat16Element: StoredElement {
    static func load(_ p: UnsafeRawPointer) -> Float {
        Float(bitPattern: UInt32(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self))) << 16)
    }
}

enum Float64Element: StoredElement {
    static func load(_ p: UnsafeRawPointer) -> Float {
        Float(Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))))
    }
}

enum Int64Element: StoredElement {
    static func load(_ p: UnsafeRawPointer) -> Float { Float(Int64(littleEndian: p.loadUnaligned(as: Int64.self))) }
}

enum Int32Element: StoredElement {
    static func load(_ p: UnsafeRawPointer) -> Float { Float(Int32(littleEndian: p.loadUnaligned(as: Int32.self))) }
}

enum Int16Element: StoredElement {
    static func load(_ p: UnsafeRawPointer) -> Float { Float(Int16(littleEndian: p.loadUnaligned(as: Int16.self))) }
}

enum Int8Element: StoredElement {
    static func load(_ p: UnsafeRawPointer) -> Float { Float(p.load(as: Int8.self)) }
}

enum UInt8Element: StoredElement {
    static func load(_ p: UnsafeRawPointer) -> Float { Float(p.load(as: UInt8.self)) }
}

/// torch stores bool as one byte, 0 or 1; any nonzero byte reads as true.
enum BoolElement: StoredElement {
    static func load(_ p: UnsafeRawPointer) -> Float { p.load(as: UInt8.self) != 0 ? 1 : 0 }
}

/// IEEE 754 binary16 to binary32, exact (every half is a float): normals rebias the exponent
/// (15 -> 127), subnormals are mantissa x 2^-24, infinities and NaNs keep their payload.
@inline(__always)
func floatFromHalf(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = UInt32(h >> 10) & 0x1f
    let mantissa = UInt32(h & 0x3ff)
    switch exponent {
    case 0:
        let magnitude = Float(mantissa) * 0x1p-24
        return sign != 0 ? -magnitude : magnitude
    case 31: return Float(bitPattern: sign | 0x7f80_0000 | mantissa << 13)
    default: return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
    }
}

/// Copies a strided view of a storage of `dtype` elements into `out` as Float32, in row-major order.
/// - Parameters:
///   - base: the storage's first byte; `offset` and `strides` count elements.
///   - shape, strides: the view (already checked to stay inside the storage).
func gather(
    _ dtype: TorchDType, base: UnsafeRawPointer, offset: Int, shape: [Int], strides: [Int], into out: UnsafeMutablePointer<Float>
) {
    let element: any StoredElement.Type =
        switch dtype {
        case .float32: Float32Element.self
        case .float16: Float16Element.self
        case .bfloat16: BFloat16Element.self
        case .float64: Float64Element.self
        case .int64: Int64Element.self
        case .int32: Int32Element.self
        case .int16: Int16Element.self
        case .int8: Int8Element.self
        case .uint8: UInt8Element.self
        case .bool: BoolElement.self
        }
    // Opening the existential hands `gather` a concrete type: one specialised loop per dtype.
    gather(element, base: base, byteCount: dtype.byteCount, offset: offset, shape: shape, strides: strides, into: out)
}

/// Copies a strided view of a storage into `out` in row-major order.
/// - Parameters:
///   - base: the storage's first byte; `offset`, `strides` in elements of `byteCount` bytes.
///   - shape, strides: the view (already checked to stay inside the storage).
func gather<E: StoredElement>(
    _: E.Type, base: UnsafeRawPointer, byteCount: Int, offset: Int, shape: [Int], strides: [Int],
    into out: UnsafeMutablePointer<Float>
) {
    let count = shape.product
    guard count > 0 else { return }
    let (outerShape, outerStrides, inner, innerStride) = collapsed(shape: shape, strides: strides)
    let innerStep = innerStride * byteCount
    var index = [Int](repeating: 0, count: outerShape.count)
    var source = base + offset * byteCount
    var o = out
    let rows = count / inner
    for _ in 0..<rows {
        var p = source
        for j in 0..<inner {
            o[j] = E.load(p)
            p += innerStep
        }
        o += inner
        // Odometer over the outer dimensions, moving `source` by each dimension's stride.
        var axis = outerShape.count - 1
        while axis >= 0 {
            index[axis] += 1
            source += outerStrides[axis] * byteCount
            if index[axis] < outerShape[axis] { break }
            source -= outerShape[axis] * outerStrides[axis] * byteCount
            index[axis] = 0
            axis -= 1
        }
    }
}

/// The view as (outer dims, their strides, inner length, inner stride), merging trailing
/// dimensions that are contiguous with each other so that a contiguous tensor is one long row.
func collapsed(shape: [Int], strides: [Int]) -> (outerShape: [Int], outerStrides: [Int], inner: Int, innerStride: Int) {
    var dims = zip(shape, strides).filter { $0.0 != 1 }  // size-1 dims move nothing
    guard let last = dims.popLast() else { return ([], [], 1, 1) }
    var inner = last.0
    let innerStride = last.1
    while let (n, s) = dims.last, s == inner * innerStride {
        inner *= n
        dims.removeLast()
    }
    return (dims.map(\.0), dims.map(\.1), inner, innerStride)
}
