extension Tensor {
    /// Bilinear resize of NCHW to `size`, as torch.nn.functional.interpolate(mode="bilinear",
    /// size=size, align_corners=alignCorners).
    public func resizedBilinear(to size: (height: Int, width: Int), alignCorners: Bool) -> Tensor {
        resized(
            rows: ResizeAxis(linearFrom: shape[2], to: size.height, alignCorners: alignCorners),
            columns: ResizeAxis(linearFrom: shape[3], to: size.width, alignCorners: alignCorners), name: "resize_bilinear")
    }

    /// `resizedBilinear(to: size, alignCorners:)` cropped to `rows` × `columns`, without
    /// making the full-size output: only the kept outputs are computed, each exactly as the full
    /// resize computes it (equal to resizing, then slicing axes 2 and 3).
    /// - Parameters:
    ///   - size: the virtual output size the source coordinates are computed for.
    ///   - rows, columns: the kept output rows and columns, inside `size`.
    /// - Returns: [N, C, rows.count, columns.count].
    public func resizedBilinear(
        to size: (height: Int, width: Int), alignCorners: Bool, croppedTo rows: Range<Int>, _ columns: Range<Int>
    ) -> Tensor {
        precondition(rank == 4, "resizedBilinear: input \(shape) is not NCHW")
        return resized(
            rows: ResizeAxis(linearFrom: shape[2], to: size.height, alignCorners: alignCorners).restricted(to: rows),
            columns: ResizeAxis(linearFrom: shape[3], to: size.width, alignCorners: alignCorners).restricted(to: columns),
            name: "resize_bilinear_crop")
    }

    /// Bilinear resize by a factor, as F.interpolate(scale_factor=factor, mode="bilinear"):
    /// output floor(in · factor), source coordinates scaled by 1/factor (not in/out), which is
    /// what DeepLab's multi-scale inputs use.
    public func resizedBilinear(scaleFactor factor: Double, alignCorners: Bool) -> Tensor {
        precondition(rank == 4, "resizedBilinear: input \(shape) is not NCHW")
        let (oh, ow) = (Int((Double(shape[2]) * factor).rounded(.down)), Int((Double(shape[3]) * factor).rounded(.down)))
        return resized(
            rows: ResizeAxis(linearFrom: shape[2], to: oh, alignCorners: alignCorners, scale: .factor(factor)),
            columns: ResizeAxis(linearFrom: shape[3], to: ow, alignCorners: alignCorners, scale: .factor(factor)),
            name: "resize_bilinear")
    }

    /// Nearest resize of NCHW to `size`, as F.interpolate(mode="nearest").
    public func resizedNearest(to size: (height: Int, width: Int)) -> Tensor {
        resized(
            rows: ResizeAxis(nearestFrom: shape[2], to: size.height),
            columns: ResizeAxis(nearestFrom: shape[3], to: size.width), name: "resize_nearest")
    }

    func resized(rows: ResizeAxis, columns: ResizeAxis, name: String) -> Tensor {
        precondition(rank == 4, "\(name): input \(shape) is not NCHW")
        precondition(!rows.lower.isEmpty && !columns.lower.isEmpty, "\(name): empty output size for input \(shape)")
        let planes = shape[0] * shape[1], inSize = (shape[2], shape[3])
        let y = Tensor(uninitialized: [shape[0], shape[1], rows.lower.count, columns.lower.count])
        Kernels.resize(storage.base, y.storage.base, planes: planes, inSize: inSize, rows: rows, columns: columns)
        let inShape = shape
        return recorded(y, name: name, inputs: [self]) { dy in
            let dx = Tensor(zeros: inShape)
            Kernels.resizeBackward(dy.storage.base, dx.storage.base, planes: planes, inSize: inSize, rows: rows, columns: columns)
            return [dx]
        }
    }
}
