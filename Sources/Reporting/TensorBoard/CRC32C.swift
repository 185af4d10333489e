/// CRC-32C (Castagnoli polynomial), the checksum of TFRecord framing, and its masked form.
///
/// As tensorflow/core/lib/hash/crc32c.h and tensorboard's `pywrap_tensorflow.masked_crc32c`:
/// reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF.
public enum CRC32C {
    // One 256-entry table (byte at a time): event records are small, so slicing-by-8 buys nothing here.
    private static let table: [UInt32] = (0..<256).map { byte in
        var crc = UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    /// The CRC-32C of `bytes` ("123456789" gives 0xE3069283).
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for byte in bytes { crc = t[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        return crc ^ 0xFFFF_FFFF
    }

    /// The CRC-32C of `bytes`.
    public static func checksum<C: Collection<UInt8>>(_ bytes: C) -> UInt32 {
        if let crc = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0)) }) { return crc }
        return Array(bytes).withUnsafeBytes { checksum($0) }
    }

    /// The masked CRC stored in TFRecords (crc32c.h `Mask`): rotate right by 15 and add a constant, so that
    /// a CRC of data that itself contains CRCs stays well distributed.
    public static func masked(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    /// The masked CRC-32C of `bytes`, as written after a TFRecord's length and after its data.
    public static func maskedChecksum<C: Collection<UInt8>>(_ bytes: C) -> UInt32 {
        masked(checksum(bytes))
    }
}
