/// The ResNet depths the framework builds (the one list of them: recipes, checkpoints and
/// benchmarks validate against it).
public enum ResNetDepth: Int, Codable, CaseIterable, Sendable, CustomStringConvertible {
    case resnet18 = 18, resnet34 = 34, resnet50 = 50, resnet101 = 101

    /// "18, 34, 50 or 101", for messages.
    public static var phrase: String {
        let all = allCases.map { "\($0.rawValue)" }
        return all.dropLast().joined(separator: ", ") + " or " + all.last!
    }

    public var description: String { "\(rawValue)" }
}
