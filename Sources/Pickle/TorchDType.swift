/// The element type of a tensor stored in a PyTorch checkpoint, named as `torch.dtype` prints it
/// without the `torch.` prefix.
public enum TorchDType: String, Sendable, CaseIterable {
    case float32, float16, bfloat16, float64
    case int64, int32, int16, int8, uint8
    case bool

    /// Bytes per element in the checkpoint.
    public var byteCount: Int {
        switch self {
        case .float64, .int64: 8
        case .float32, .int32: 4
        case .float16, .bfloat16, .int16: 2
        case .int8, .uint8, .bool: 1
        }
    }

    /// Whether values are floating point (float32, float16, bfloat16, float64).
    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float16, .bfloat16, .float64: true
        default: false
        }
    }
}
