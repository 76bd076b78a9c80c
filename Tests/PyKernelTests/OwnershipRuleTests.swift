import Foundation
import Testing

/// The ownership rule the engine's sources keep: a `PyBorrowed` is taken only from an owner bound
/// to a name.
///
/// Swift destroys a temporary owner right after the expression that uses it — before the call its
/// borrowed view is passed to: in `dict.item(try PyOwned.string("key").borrowed)` the key string
/// is released (its last reference) and then looked up. The allocator's free list took the
/// increment of such a released string held by a tuple, and the fork server crashed at its first
/// fork now and then. `test_memory_discipline.py` checks the running engine under CPython's debug
/// allocator; this test keeps the pattern out of the sources.
@Suite("Ownership: no borrowed view of a temporary owner")
struct OwnershipRuleTests {
    /// `…).borrowed`, `…]!.borrowed` or a line that begins with `.borrowed`: a borrowed view of
    /// the value an expression just produced.
    static var temporaryBorrow: Regex<Substring> { #/[)\]][!?]?\s*\.borrowed(?!\w)|^\s*\.borrowed(?!\w)/# }

    @Test("No source takes a borrowed view of an owner that is not bound to a name")
    func noBorrowedViewOfATemporary() throws {
        let sources = URL(filePath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appending(path: "Sources")
        let files = try #require(FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil))
            .compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }
        #expect(files.count > 20, "the sources were not found under \(sources.path)")
        let pattern = Self.temporaryBorrow
        var found: [String] = []
        for file in files {
            let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            for (index, line) in lines.enumerated() where line.contains(pattern) {
                found.append("\(file.path):\(index + 1): \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
        #expect(found.isEmpty, "bind the owner to a name first:\n\(found.joined(separator: "\n"))")
    }

    @Test("The rule's pattern finds the forms it is meant to find")
    func patternFindsTemporaries() {
        #expect("f(try PyOwned.string(\"k\").borrowed)".contains(Self.temporaryBorrow))
        #expect("(try? node.attribute(name))?.borrowed.integerValue".contains(Self.temporaryBorrow))
        #expect("    .borrowed.call()".contains(Self.temporaryBorrow))
        #expect(!"dict.item(key.borrowed)".contains(Self.temporaryBorrow))
        #expect(!"let view = owner.borrowed".contains(Self.temporaryBorrow))
    }
}
