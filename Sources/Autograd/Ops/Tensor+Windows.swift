extension Tensor {
    /// Splits tokens [B, H, W, C] into non-overlapping ws×ws windows, as segment_anything
    /// image_encoder.py `window_partition`: the bottom and right are zero-padded to multiples of
    /// the window (F.pad), then windows are listed per image in row-major window order.
    /// - Returns: windows [B·nH·nW, ws, ws, C] and the padded size (nH·ws, nW·ws).
    public func windowPartitioned(windowSize: Int) -> (windows: Tensor, paddedSize: (height: Int, width: Int)) {
        precondition(
            rank == 4 && windowSize > 0, "windowPartitioned: input \(shape) is not [B, H, W, C] or window \(windowSize) < 1")
        let (b, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        let (hp, wp) = ((h + windowSize - 1) / windowSize * windowSize, (w + windowSize - 1) / windowSize * windowSize)
        var x = self
        // Padding rows are constants: their gradient is dropped by concat's backward slices.
        if hp > h { x = Tensor.concat([x, Tensor(zeros: [b, hp - h, w, c])], alongAxis: 1) }
        if wp > w { x = Tensor.concat([x, Tensor(zeros: [b, hp, wp - w, c])], alongAxis: 2) }
        let (nh, nw) = (hp / windowSize, wp / windowSize)
        let windows = x.reshaped(to: [b, nh, windowSize, nw, windowSize, c]).permuted([0, 1, 3, 2, 4, 5])
            .reshaped(to: [b * nh * nw, windowSize, windowSize, c])
        return (windows, (hp, wp))
    }

    /// The inverse of `windowPartitioned`, as segment_anything `window_unpartition`: windows
    /// [B·nH·nW, ws, ws, C] back to [B, Hp, Wp, C], then the padding dropped.
    /// - Returns: [B, size.height, size.width, C].
    public static func windowUnpartitioned(
        _ windows: Tensor, windowSize: Int, paddedSize: (height: Int, width: Int), size: (height: Int, width: Int)
    ) -> Tensor {
        let (hp, wp) = paddedSize
        precondition(
            windows.rank == 4 && windows.shape[1] == windowSize && windows.shape[2] == windowSize
                && hp % windowSize == 0 && wp % windowSize == 0 && size.height <= hp && size.width <= wp,
            "windowUnpartitioned: windows \(windows.shape) do not fit window \(windowSize), padded \(paddedSize), size \(size)")
        let (nh, nw) = (hp / windowSize, wp / windowSize)
        precondition(
            windows.shape[0] % (nh * nw) == 0, "windowUnpartitioned: \(windows.shape[0]) windows for \(nh)×\(nw) per image")
        let (b, c) = (windows.shape[0] / (nh * nw), windows.shape[3])
        var x = windows.reshaped(to: [b, nh, nw, windowSize, windowSize, c]).permuted([0, 1, 3, 2, 4, 5])
            .reshaped(to: [b, hp, wp, c])
        if hp > size.height { x = x.slice(alongAxis: 1, 0..<size.height) }
        if wp > size.width { x = x.slice(alongAxis: 2, 0..<size.width) }
        return x
    }
}
