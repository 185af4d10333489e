import Foundation
import Protobuf

/// TensorBoard's event records, as this module writes and reads them: the `Event` message of
/// tensorflow/core/util/event.proto with the `Summary` values TensorBoard's scalar, image and text
/// dashboards show (tensorboard/compat/proto/summary.proto).
public enum TensorBoardEvents {
    /// The file version TensorBoard expects in the first event of every file (event.proto `file_version`;
    /// tensorboard/summary/writer/event_file_writer.py writes the same).
    public static let fileVersion = "brain.Event:2"

    /// One `Event`: either the file-version header or a summary of tagged values at one step.
    /// Other kinds (graphs, log messages, session logs) read as an event with no values.
    public struct Event: Equatable, Sendable {
        /// Seconds since 1970-01-01 UTC (event.proto `wall_time`).
        public var wallTime: Double
        /// The global step (event.proto `step`).
        public var step: Int
        /// `file_version`, set only on a file's first event.
        public var fileVersion: String?
        /// `summary.value`, in file order.
        public var values: [Value]
        /// `source_metadata.writer`: the program that wrote the file, on the header event (tensorboard's
        /// EventFileWriter puts its module name there; TensorBoard only logs it).
        public var sourceWriter: String?
        /// `session_log` with status START: TensorBoard then drops the events of earlier wall time
        /// at this step or later (what PyTorch's `SummaryWriter(purge_step=)` writes when a run
        /// resumes from a checkpoint, so the curve does not double back).
        public var sessionStart = false

        /// An event; pass `fileVersion` (and `sourceWriter`) for the header, `values` for a summary.
        public init(
            wallTime: Double, step: Int, fileVersion: String? = nil, values: [Value] = [], sourceWriter: String? = nil,
            sessionStart: Bool = false
        ) {
            self.wallTime = wallTime
            self.step = step
            self.fileVersion = fileVersion
            self.values = values
            self.sourceWriter = sourceWriter
            self.sessionStart = sessionStart
        }
    }

    /// One `Summary.Value`: a tag and what TensorBoard shows under it.
    public struct Value: Equatable, Sendable {
        /// The series name (`tag`), e.g. "train/loss".
        public var tag: String
        /// The payload.
        public var kind: Kind

        /// A tagged value.
        public init(tag: String, kind: Kind) {
            self.tag = tag
            self.kind = kind
        }
    }

    /// The payload of a `Summary.Value`.
    public enum Kind: Equatable, Sendable {
        /// `simple_value` (a float32, as the scalars dashboard stores it).
        case scalar(Float)
        /// `image`: an encoded PNG (or JPEG) with its size.
        case image(Image)
        /// A string tensor with plugin "text" (tensorboard/plugins/text/summary_v2.py `text_pb`); Markdown.
        case text(String)
        /// Anything else (histograms, audio, tensors of other plugins): the plugin name, "" when none.
        case unsupported(pluginName: String)
    }

    /// `Summary.Image`: what the images dashboard decodes.
    public struct Image: Equatable, Sendable {
        /// Pixels.
        public var height: Int
        /// Pixels.
        public var width: Int
        /// 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA, 5 DIGITAL_YUV, 6 BGRA (summary.proto).
        public var colorspace: Int
        /// The file bytes (PNG here).
        public var encoded: Data

        /// An encoded image and its size.
        public init(height: Int, width: Int, colorspace: Int, encoded: Data) {
            self.height = height
            self.width = width
            self.colorspace = colorspace
            self.encoded = encoded
        }
    }
}

// Field numbers, from tensorflow/core/util/event.proto, tensorboard/compat/proto/summary.proto,
// tensor.proto and tensor_shape.proto.
private enum EventField {
    static let wallTime = 1, step = 2, fileVersion = 3, summary = 5, sessionLog = 6, sourceMetadata = 10
}
/// event.proto `SessionLog`: `status` (1 = START).
private enum SessionLogField {
    static let status = 1, start: UInt64 = 1
}
private enum SourceMetadataField {
    static let writer = 1
}
private enum SummaryField {
    static let value = 1
}
private enum ValueField {
    static let tag = 1, simpleValue = 2, image = 4, tensor = 8, metadata = 9
}
private enum ImageField {
    static let height = 1, width = 2, colorspace = 3, encodedImageString = 4
}
private enum MetadataField {
    static let pluginData = 1
}
private enum PluginDataField {
    static let pluginName = 1
}
private enum TensorField {
    static let dtype = 1, tensorShape = 2, stringVal = 8
}
private enum TensorShapeField {
    static let dim = 2
}
private enum TensorShapeDimField {
    static let size = 1
}
/// types.proto `DT_STRING`.
private let dtString: UInt64 = 7
private let textPluginName = "text"

extension TensorBoardEvents.Event {
    /// The serialized `Event` message. Fields go in ascending number and proto3 defaults (wall_time 0,
    /// step 0, empty strings) are left out, as protobuf's own serializers do, so the bytes equal the
    /// official writer's for the same event. Members of a oneof (file_version, summary, simple_value,
    /// image, tensor) are written even when empty: they have presence.
    func serialized() -> [UInt8] {
        var w = ProtobufWriter()
        if wallTime != 0 || wallTime.sign == .minus { w.double(EventField.wallTime, wallTime) }
        if step != 0 { w.int64(EventField.step, Int64(step)) }
        if let fileVersion {
            w.string(EventField.fileVersion, fileVersion)
        } else if sessionStart {
            w.message(EventField.sessionLog) { $0.varint(SessionLogField.status, SessionLogField.start) }
        } else {
            w.message(EventField.summary) { summary in
                for value in values { summary.message(SummaryField.value) { value.serialize(into: &$0) } }
            }
        }
        if let sourceWriter { w.message(EventField.sourceMetadata) { $0.string(SourceMetadataField.writer, sourceWriter) } }
        return w.bytes
    }

    /// Decodes one serialized `Event`, skipping fields this module does not model.
    /// - Throws: `ProtobufDecodingError` on malformed bytes or a field of the wrong wire type.
    init(serialized bytes: ArraySlice<UInt8>) throws {
        self.init(wallTime: 0, step: 0)
        for field in try ProtobufField.decode(bytes) {
            switch field.number {
            case EventField.wallTime: wallTime = try field.double()
            case EventField.step: step = Int(try field.int64())
            case EventField.fileVersion: fileVersion = try field.string()
            case EventField.summary:
                for valueField in try field.message() where valueField.number == SummaryField.value {
                    values.append(try TensorBoardEvents.Value(serialized: try valueField.bytes()))
                }
            case EventField.sessionLog:
                for f in try field.message() where f.number == SessionLogField.status {
                    sessionStart = try f.uint64() == SessionLogField.start
                }
            case EventField.sourceMetadata:
                for f in try field.message() where f.number == SourceMetadataField.writer { sourceWriter = try f.string() }
            default: continue
            }
        }
    }
}

extension TensorBoardEvents.Value {
    fileprivate func serialize(into w: inout ProtobufWriter) {
        if !tag.isEmpty { w.string(ValueField.tag, tag) }
        switch kind {
        case .scalar(let value):
            w.float(ValueField.simpleValue, value)
        case .image(let image):
            w.message(ValueField.image) { m in
                if image.height != 0 { m.int64(ImageField.height, Int64(image.height)) }
                if image.width != 0 { m.int64(ImageField.width, Int64(image.width)) }
                if image.colorspace != 0 { m.int64(ImageField.colorspace, Int64(image.colorspace)) }
                if !image.encoded.isEmpty { m.bytes(ImageField.encodedImageString, image.encoded) }
            }
        case .text(let text):
            // As tensorboard/plugins/text/summary_v2.py text_pb: a rank-0 DT_STRING tensor (empty shape
            // message) and metadata naming the "text" plugin with empty content (TextPluginData version 0).
            w.message(ValueField.tensor) { t in
                t.varint(TensorField.dtype, dtString)
                t.message(TensorField.tensorShape) { _ in }
                t.string(TensorField.stringVal, text)
            }
            w.message(ValueField.metadata) { m in
                m.message(MetadataField.pluginData) { $0.string(PluginDataField.pluginName, textPluginName) }
            }
        case .unsupported(let pluginName):
            preconditionFailure("TensorBoardEvents: cannot write a value of unsupported kind (plugin '\(pluginName)')")
        }
    }

    fileprivate init(serialized bytes: ArraySlice<UInt8>) throws {
        var tag = ""
        var scalar: Float?
        var image: TensorBoardEvents.Image?
        var tensor: [ProtobufField]?
        var pluginName = ""
        for field in try ProtobufField.decode(bytes) {
            switch field.number {
            case ValueField.tag: tag = try field.string()
            case ValueField.simpleValue: scalar = try field.float()
            case ValueField.image:
                var decoded = TensorBoardEvents.Image(height: 0, width: 0, colorspace: 0, encoded: Data())
                for f in try field.message() {
                    switch f.number {
                    case ImageField.height: decoded.height = Int(try f.int64())
                    case ImageField.width: decoded.width = Int(try f.int64())
                    case ImageField.colorspace: decoded.colorspace = Int(try f.int64())
                    case ImageField.encodedImageString: decoded.encoded = Data(try f.bytes())
                    default: continue
                    }
                }
                image = decoded
            case ValueField.tensor: tensor = try field.message()
            case ValueField.metadata:
                for m in try field.message() where m.number == MetadataField.pluginData {
                    for p in try m.message() where p.number == PluginDataField.pluginName { pluginName = try p.string() }
                }
            default: continue
            }
        }
        let kind: TensorBoardEvents.Kind
        if let scalar {
            kind = .scalar(scalar)
        } else if let image {
            kind = .image(image)
        } else if let tensor, pluginName == textPluginName, let text = try Self.singleString(tensor) {
            kind = .text(text)
        } else {
            kind = .unsupported(pluginName: pluginName)
        }
        self.init(tag: tag, kind: kind)
    }

    /// The string of a DT_STRING tensor holding exactly one element (rank 0, as tensorboard writes,
    /// or shape [1], as torch.utils.tensorboard's `text` does); nil for anything else (tables).
    private static func singleString(_ tensor: [ProtobufField]) throws -> String? {
        var dtype: UInt64 = 0
        var elements = 1
        var strings: [String] = []
        for f in tensor {
            switch f.number {
            case TensorField.dtype: dtype = try f.uint64()
            case TensorField.tensorShape:
                for dim in try f.message() where dim.number == TensorShapeField.dim {
                    for s in try dim.message() where s.number == TensorShapeDimField.size { elements *= Int(try s.int64()) }
                }
            case TensorField.stringVal: strings.append(String(decoding: try f.bytes(), as: UTF8.self))  // bytes in tensor.proto
            default: continue
            }
        }
        guard dtype == dtString, elements == 1, strings.count == 1 else { return nil }
        return strings[0]
    }
}
