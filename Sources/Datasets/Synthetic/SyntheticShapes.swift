import Foundation

/// The object classes of the synthetic dataset and how each is drawn.
///
/// Bodies of every class share one pool of colours and textures; classes differ only in shape
/// and in a small part of a class-specific colour at a class-specific place. A classifier finds
/// the part the easiest cue, so its CAM fires there (partial activation) — the weakness SEPL
/// repairs with class-agnostic masks.
enum SyntheticShape: Int, CaseIterable {
    case disc = 1, box, triangle, cross, ring, diamond

    var name: String { String(describing: self) }

    /// Whether the object-local point (u, v), scaled so the shape spans [-1, 1]², is inside.
    func contains(u: Double, v: Double) -> Bool {
        switch self {
        case .disc: return u * u + v * v <= 1
        case .box: return abs(u) <= 0.9 && abs(v) <= 0.75
        case .triangle: return v <= 1 && v >= -1 && abs(u) <= (v + 1) / 2
        case .cross: return (abs(u) <= 0.3 && abs(v) <= 1) || (abs(v) <= 0.3 && abs(u) <= 1)
        case .ring:
            let r = u * u + v * v
            return r <= 1 && r >= 0.36
        case .diamond: return abs(u) + abs(v) <= 1
        }
    }

    /// Where the discriminative part sits, in object-local coordinates (always inside the body).
    var partCenter: (u: Double, v: Double) {
        switch self {
        case .disc: return (0.35, -0.35)
        case .box: return (-0.5, 0.4)
        case .triangle: return (0, 0.55)
        case .cross: return (0, 0.7)
        case .ring: return (-0.78, 0)
        case .diamond: return (0, 0)
        }
    }

    /// The part's colour: saturated, unlike any body or background colour.
    var partColor: (Double, Double, Double) {
        switch self {
        case .disc: return (255, 255, 255)
        case .box: return (20, 20, 20)
        case .triangle: return (255, 230, 0)
        case .cross: return (0, 230, 255)
        case .ring: return (255, 0, 230)
        case .diamond: return (255, 120, 0)
        }
    }
}

/// Colours shared by all classes' bodies (mid-saturation reds, blues, greens, purples).
let syntheticBodyColors: [(Double, Double, Double)] = [
    (180, 60, 60), (60, 90, 180), (70, 150, 80), (140, 70, 160), (190, 140, 70),
]

/// Background colours: muted earth and grey tones, far from the body colours.
let syntheticBackgroundColors: [(Double, Double, Double)] = [
    (110, 105, 90), (85, 95, 85), (125, 120, 115), (95, 85, 70),
]
