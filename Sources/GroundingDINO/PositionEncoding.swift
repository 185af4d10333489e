import Autograd
import Foundation

// The sine position encodings of Grounding DINO: image positions (position_encoding.py,
// PositionEmbeddingSineHW), text positions (utils.py, get_sine_pos_embed) and box coordinates
// (utils.py, gen_sineembed_for_position). Each is computed in Float32 in the reference's order of
// operations; they are constants (no gradient).

enum SineEncoding {
    /// temperature^(2⌊k/2⌋ / count) for k < count, as torch computes it in float32.
    static func frequencies(count: Int, temperature: Float) -> [Float] {
        (0..<count).map { k in powf(temperature, Float(2 * (k / 2)) / Float(count)) }
    }

    /// [sin(v/f0), cos(v/f1), sin(v/f2), …] of one value: the reference's stack of sin at even
    /// and cos at odd indices, flattened (interleaved).
    static func interleaved(_ value: Float, _ frequencies: [Float], into out: inout [Float]) {
        for (k, f) in frequencies.enumerated() {
            let v = value / f
            out.append(k % 2 == 0 ? sinf(v) : cosf(v))
        }
    }

    /// PositionEmbeddingSineHW with normalize=True and no padding: y = (row + 1) / (H + 1e-6) · 2π,
    /// x likewise; channels (y features…, x features…). → [1, 2·count, H, W].
    static func image(height: Int, width: Int, count: Int, temperatureH: Float = 20, temperatureW: Float = 20) -> Tensor {
        let scale = 2 * Float.pi
        let fy = frequencies(count: count, temperature: temperatureH)
        let fx = frequencies(count: count, temperature: temperatureW)
        var values = [Float](repeating: 0, count: 2 * count * height * width)
        let plane = height * width
        for i in 0..<height {
            let y = Float(i + 1) / (Float(height) + 1e-6) * scale
            for j in 0..<width {
                let x = Float(j + 1) / (Float(width) + 1e-6) * scale
                var features: [Float] = []
                features.reserveCapacity(2 * count)
                interleaved(y, fy, into: &features)
                interleaved(x, fx, into: &features)
                for (c, v) in features.enumerated() { values[c * plane + i * width + j] = v }
            }
        }
        return Tensor(shape: [1, 2 * count, height, width], values: values)
    }

    /// get_sine_pos_embed(position_ids[..., None], num_pos_feats=count, temperature=10000,
    /// exchange_xy=False): each id · 2π / 10000^(2⌊k/2⌋/count), interleaved. → [B, T, count].
    static func text(positionIDs: [[Int]], count: Int) -> Tensor {
        let f = frequencies(count: count, temperature: 10000)
        var values: [Float] = []
        for row in positionIDs {
            for id in row { interleaved(Float(id) * (2 * Float.pi), f, into: &values) }
        }
        return Tensor(shape: [positionIDs.count, positionIDs.first?.count ?? 0, count], values: values)
    }

    /// gen_sineembed_for_position: boxes [N, 4] (cx, cy, w, h) or points [N, 2] → [N, 4·count] (or
    /// 2·count), `count` features per coordinate in the order (y, x, w, h).
    static func boxes(_ boxes: Tensor, count: Int) -> Tensor {
        let n = boxes.shape[0], d = boxes.shape[1]
        let f = frequencies(count: count, temperature: 10000)
        let scale = 2 * Float.pi
        var values: [Float] = []
        values.reserveCapacity(n * d * count)
        let b = boxes.scalars
        let order = d == 4 ? [1, 0, 2, 3] : [1, 0]
        for row in 0..<n {
            for c in order { interleaved(b[row * d + c] * scale, f, into: &values) }
        }
        return Tensor(shape: [n, d * count], values: values)
    }
}
