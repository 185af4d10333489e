// The image types every pseudo-label API takes and returns (Image, LabelMap, SegmentMask) come
// with `import PseudoLabels`.
@_exported import Imaging
