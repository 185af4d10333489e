import CZlib
import Foundation

/// A gzip-compressed text file read whole (zlib's gz reader): the committed fixture key lists
/// (`Tests/Fixtures/*/keys_*.txt.gz`) are ten times smaller that way.
package enum GzipText {
    /// The file's decompressed bytes as UTF-8 text.
    /// - Throws: `CocoaError` naming the file when it cannot be opened, read or decoded.
    package static func read(_ path: String) throws -> String {
        guard let file = gzopen(path, "rb") else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        defer { gzclose(file) }
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
            guard count >= 0 else { throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: path]) }
            if count == 0 { break }
            data.append(contentsOf: chunk[0..<Int(count)])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CocoaError(.fileReadInapplicableStringEncoding, userInfo: [NSFilePathErrorKey: path])
        }
        return text
    }
}
