import CHDF5
import Foundation

/// A scalar or string attribute of an HDF5 group or dataset.
public enum HDF5Attribute: Equatable, Sendable {
    case int(Int)
    case double(Double)
    case string(String)

    /// The value as an integer, if it is one.
    public var intValue: Int? { if case .int(let v) = self { v } else { nil } }
    /// The value as a double (integers converted).
    public var doubleValue: Double? {
        switch self {
        case .double(let v): v
        case .int(let v): Double(v)
        case .string: nil
        }
    }
    /// The value as a string, if it is one.
    public var stringValue: String? { if case .string(let v) = self { v } else { nil } }
}

extension HDF5File {
    /// Sets attribute `name` on the object at `object` ("/" for the file), replacing any old one.
    /// Integers are stored as Int64, doubles as Float64 and strings as variable-length UTF-8,
    /// which h5py reads back as int, float and str.
    public func setAttribute(_ value: HDF5Attribute, named name: String, on object: String = "/") throws {
        let target = try openObject(object)
        defer { H5Oclose(target) }
        if H5Aexists(target, name) > 0 { H5Adelete(target, name) }
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        let type: hid_t
        switch value {
        case .int: type = H5Tcopy(chdf5_native_int64())
        case .double: type = H5Tcopy(chdf5_native_double())
        case .string:
            type = H5Tcopy(chdf5_c_s1())
            H5Tset_size(type, chdf5_variable())
            H5Tset_cset(type, H5T_CSET_UTF8)
        }
        defer { H5Tclose(type) }
        let attribute = H5Acreate2(target, name, type, space, chdf5_default(), chdf5_default())
        guard attribute >= 0 else { throw writeFailure(name: "\(object)@\(name)") }
        defer { H5Aclose(attribute) }
        let status: herr_t
        switch value {
        case .int(let v):
            var x = Int64(v)
            status = H5Awrite(attribute, type, &x)
        case .double(let v):
            var x = v
            status = H5Awrite(attribute, type, &x)
        case .string(let s):
            status = s.withCString { cString in
                var pointer: UnsafePointer<CChar>? = cString
                return H5Awrite(attribute, type, &pointer)
            }
        }
        guard status >= 0 else { throw writeFailure(name: "\(object)@\(name)") }
    }

    /// The attribute `name` of the object at `object`, or nil when it has none. Reads integer,
    /// floating-point and (fixed or variable-length) string attributes, as h5py writes them.
    public func attribute(named name: String, on object: String = "/") throws -> HDF5Attribute? {
        let target = try openObject(object)
        defer { H5Oclose(target) }
        guard H5Aexists(target, name) > 0 else { return nil }
        let attribute = H5Aopen(target, name, chdf5_default())
        guard attribute >= 0 else { throw HDF5Error.readFailed(name: "\(object)@\(name)", path: path) }
        defer { H5Aclose(attribute) }
        let type = H5Aget_type(attribute)
        defer { H5Tclose(type) }
        let space = H5Aget_space(attribute)
        defer { H5Sclose(space) }
        guard H5Sget_simple_extent_npoints(space) == 1 else {
            throw HDF5Error.unsupportedType(name: "\(object)@\(name)", path: path, what: "array attribute")
        }
        switch H5Tget_class(type) {
        case H5T_INTEGER:
            var v: Int64 = 0
            guard H5Aread(attribute, chdf5_native_int64(), &v) >= 0 else { throw HDF5Error.readFailed(name: name, path: path) }
            return .int(Int(v))
        case H5T_FLOAT:
            var v = 0.0
            guard H5Aread(attribute, chdf5_native_double(), &v) >= 0 else { throw HDF5Error.readFailed(name: name, path: path) }
            return .double(v)
        case H5T_STRING:
            if H5Tis_variable_str(type) > 0 {
                let memoryType = H5Tcopy(chdf5_c_s1())
                defer { H5Tclose(memoryType) }
                H5Tset_size(memoryType, chdf5_variable())
                H5Tset_cset(memoryType, H5Tget_cset(type))
                var pointer: UnsafeMutablePointer<CChar>?
                guard H5Aread(attribute, memoryType, &pointer) >= 0 else { throw HDF5Error.readFailed(name: name, path: path) }
                defer { H5free_memory(pointer) }
                return .string(pointer.map { String(cString: $0) } ?? "")
            }
            let size = H5Tget_size(type)
            var buffer = [CChar](repeating: 0, count: size + 1)
            guard H5Aread(attribute, type, &buffer) >= 0 else { throw HDF5Error.readFailed(name: name, path: path) }
            return .string(String(cString: buffer))
        default:
            throw HDF5Error.unsupportedType(name: "\(object)@\(name)", path: path, what: "attribute type")
        }
    }

    /// The attribute `name`, which must exist.
    public func requiredAttribute(named name: String, on object: String = "/") throws -> HDF5Attribute {
        guard let value = try attribute(named: name, on: object) else {
            throw HDF5Error.missingAttribute(name: name, object: object, path: path)
        }
        return value
    }

    private func openObject(_ object: String) throws -> hid_t {
        guard object == "/" || contains(object) else { throw HDF5Error.missingDataset(name: object, path: path) }
        let target = H5Oopen(id, object, chdf5_default())
        guard target >= 0 else { throw HDF5Error.readFailed(name: object, path: path) }
        return target
    }
}
