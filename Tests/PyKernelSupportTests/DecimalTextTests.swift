import PyKernelSupport
import Testing

@Suite("Decimal text: the one writer of integers' digits")
struct DecimalTextTests {
    /// Every digit count, both signs, the edges of `Int64`, and pairs ending in 0 and 9.
    static let values: [Int64] = {
        var values: [Int64] = [0, 1, -1, 9, 10, 99, 100, 101, 909, 1_000, Int64.max, Int64.min, Int64.min + 1]
        var power: Int64 = 1
        for _ in 0..<18 {
            power *= 10
            values += [power - 1, power, power + 1, -power, -(power - 1), power * 9 / 10 + 7]
        }
        return values
    }()

    @Test(arguments: values)
    func writesWhatStringWrites(value: Int64) {
        let text = withUnsafeTemporaryAllocation(byteCount: maxDecimalLength + 4, alignment: 1) { buffer in
            buffer.initializeMemory(as: UInt8.self, repeating: UInt8(ascii: "#"))
            let end = buffer.baseAddress! + maxDecimalLength
            let start = writeDecimal(value, endingAt: end)
            #expect(start >= buffer.baseAddress!)
            // Nothing written at or past `end`.
            #expect(Array(UnsafeRawBufferPointer(start: end, count: 4)) == Array("####".utf8))
            return String(decoding: UnsafeRawBufferPointer(start: start, count: end - start), as: UTF8.self)
        }
        #expect(text == String(value))
    }
}
