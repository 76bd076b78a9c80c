import JSONRPC
import Testing

/// Fragments (``JSONFragment``): text serialized once and spliced as is.
@Suite struct JSONFragmentTests {
    static let values: [JSONValue] = [
        .null, .bool(true), .integer(-42), .integer(.min), .double(1.0), .double(-0.0), .double(.nan), .double(1.5e300),
        .string(""), .string("a\"b\\c\n\u{2028}\u{1}é😀"), .array([]), .object([:]),
        [1, "a", nil, [true], ["k": false]], ["b": 1, "a": ["z": [], "y": 2.5]],
    ]

    @Test(arguments: values)
    func aFragmentWritesItsValuesText(value: JSONValue) throws {
        let text = value.jsonString
        let fragment = JSONFragment(value)
        #expect(fragment.bytes == Array(text.utf8))
        #expect(JSONValue.fragment(fragment).jsonString == text)
        #expect(JSONValue.array([.fragment(fragment), value, .fragment(fragment)]).jsonString == "[\(text),\(text),\(text)]")
        #expect(JSONValue.object(["x": .fragment(fragment)]).jsonString == #"{"x":"# + text + "}")
        // Read back: the value, except NaN, which JSON writes as null.
        #expect(fragment.value == (value == .double(.nan) || value.doubleValue?.isNaN == true ? .null : value))
    }

    @Test func accessorsSeeThroughAFragment() {
        let object = JSONValue.fragment(JSONFragment(["k": 1, "s": "t"]))
        #expect(object["k"] == 1)
        #expect(object["s"]?.stringValue == "t")
        #expect(object.objectValue?.keys == ["k", "s"])
        #expect(object.typeName == "object")
        #expect(object.arrayValue == nil)
        #expect(JSONValue.fragment(JSONFragment("s")).stringValue == "s")
        #expect(JSONValue.fragment(JSONFragment(7)).intValue == 7)
        #expect(JSONValue.fragment(JSONFragment(7)).doubleValue == 7)
        #expect(JSONValue.fragment(JSONFragment(true)).boolValue == true)
        #expect(JSONValue.fragment(JSONFragment([1, 2])).arrayValue == [1, 2])
        #expect(JSONValue.fragment(JSONFragment(nil)).isNull)
        #expect(JSONValue.fragment(JSONFragment(nil)).typeName == "null")
        #expect(RequestID(.fragment(JSONFragment(3))) == .integer(3))
        #expect(RequestID(.fragment(JSONFragment([3]))) == nil)
    }

    @Test func anObjectWrittenMemberByMemberIsTheObjectsText() {
        let inner = JSONFragment(["deep": [1.5, "x\u{0}"]])
        let written = JSONFragment.object(capacity: 4) { object in
            object.member("a", 1)
            object.member("b\n", object: { nested in
                nested.member("c", "x\ny")
                nested.member("d", object: { _ in })
                nested.member("e", .fragment(inner))
            })
            object.member("empty", object: { _ in })
            object.member("f", nil)
        }
        let tree: JSONValue = ["a": 1, "b\n": ["c": "x\ny", "d": [:], "e": ["deep": [1.5, "x\u{0}"]]], "empty": [:], "f": nil]
        #expect(written.bytes == tree.serialized())
        #expect(written.value == tree)
        #expect(JSONFragment.object { _ in }.bytes == Array("{}".utf8))
        // Keys encoded once: the same text as keys given as strings, escapes included.
        let keyed = JSONFragment.object { object in
            object.member(JSONKey("a"), 1)
            object.member(JSONKey("b\n\"é"), object: { nested in nested.member(JSONKey("c"), "x\ny") })
            object.member(JSONKey(""), object: { _ in })
        }
        #expect(keyed.bytes == (["a": 1, "b\n\"é": ["c": "x\ny"], "": [:]] as JSONValue).serialized())
    }

    /// Generated documents with their arrays and objects turned into fragments at every other
    /// level (objects written member by member): the same text as the tree.
    @Test func generatedDocumentsWithFragmentsWriteTheSameText() {
        var fuzz = DifferentialFuzz(seed: JSONDifferentialTests.seed &+ 2)
        for index in 0..<JSONDifferentialTests.documents / 10 {
            let value = fuzz.value()
            let spliced = Self.splice(value, depth: index % 2)
            guard spliced.serialized() == value.serialized() else {
                Issue.record("document \(index): \(spliced.jsonString) vs \(value.jsonString)")
                return
            }
        }
    }

    private static func splice(_ value: JSONValue, depth: Int) -> JSONValue {
        switch value {
        case .array(let elements):
            let array = JSONValue.array(elements.map { splice($0, depth: depth + 1) })
            return depth % 2 == 0 ? .fragment(JSONFragment(array)) : array
        case .object(let object) where depth % 2 == 0:
            return .fragment(JSONFragment.object { writer in
                for index in object.keys.indices { writer.member(object.keys[index], splice(object.values[index], depth: depth + 1)) }
            })
        case .object(let object):
            var copy = JSONObject()
            for index in object.keys.indices { copy[object.keys[index]] = splice(object.values[index], depth: depth + 1) }
            return .object(copy)
        default:
            return value
        }
    }
}
