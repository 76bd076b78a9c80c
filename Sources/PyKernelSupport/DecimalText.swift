/// The most bytes ``writeDecimal(_:endingAt:)`` writes: 19 digits and a sign (`Int64.min`).
package let maxDecimalLength = 20

/// Writes the decimal text of `value` (with `-` first when negative), as `String(value)` spells
/// it, into the bytes just before `end` (at most ``maxDecimalLength`` of them), two digits at a
/// time; returns where the text starts. One writer for the JSON serializer and `print(int)`.
package func writeDecimal(_ value: Int64, endingAt end: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
    var start = end
    var magnitude = value.magnitude
    let pairs = decimalPairs.utf8Start
    while magnitude >= 100 {
        start -= 2
        start.copyMemory(from: pairs + Int(magnitude % 100) * 2, byteCount: 2)
        magnitude /= 100
    }
    if magnitude >= 10 {
        start -= 2
        start.copyMemory(from: pairs + Int(magnitude) * 2, byteCount: 2)
    } else {
        start -= 1
        start.storeBytes(of: UInt8(ascii: "0") + UInt8(magnitude), as: UInt8.self)
    }
    if value < 0 {
        start -= 1
        start.storeBytes(of: UInt8(ascii: "-"), as: UInt8.self)
    }
    return start
}

/// The decimal digits of 0 to 99, two bytes each.
private let decimalPairs: StaticString = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"
