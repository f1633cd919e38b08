/// Redis Cluster key slots: CRC16 (XMODEM: polynomial 0x1021, initial 0, no reflection, no
/// final xor) of the key, or of its hash tag, modulo 16384.
public enum HashSlot {
    public static let count = 16384

    private static let table: [UInt16] = (0..<256).map { byte in
        var crc = UInt16(byte) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }

    public static func crc16<Bytes: Collection>(_ bytes: Bytes) -> UInt16 where Bytes.Element == UInt8 {
        var crc: UInt16 = 0
        for byte in bytes { crc = (crc << 8) ^ table[Int(UInt8(crc >> 8) ^ byte)] }
        return crc
    }

    /// The part of the key that is hashed: the bytes between the first `{` and the first `}`
    /// after it, when that is not empty; otherwise the whole key.
    public static func hashedPart(of key: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")),
              let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")),
              close > open + 1 else { return key }
        return key[(open + 1)..<close]
    }

    public static func of(_ key: [UInt8]) -> Int {
        Int(crc16(hashedPart(of: key[...])) & 0x3FFF)
    }

    public static func of(_ key: String) -> Int { of(Array(key.utf8)) }
}
