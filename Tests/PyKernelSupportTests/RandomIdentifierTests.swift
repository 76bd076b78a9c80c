import Foundation
import PyKernelSupport
import Testing

@Suite("Random identifiers: every id the program makes up")
struct RandomIdentifierTests {
    /// A lowercase version 4 UUID of the RFC 4122 variant, as Foundation parses it.
    @Test func isALowercaseVersion4UUID() throws {
        for _ in 0..<1_000 {
            let id = randomIdentifier()
            #expect(id.utf8.count == 36)
            #expect(id == id.lowercased())
            let uuid = try #require(UUID(uuidString: id))
            #expect(uuid.uuid.6 >> 4 == 4)
            #expect(uuid.uuid.8 >> 6 == 0b10)
        }
    }


    /// Ids drawn in a row are all different (the all-zero UUID Foundation's `UUID()` answered when
    /// it could not open `/dev/urandom` was one id for all; running out of descriptors is tested
    /// through the server, test_isolation.py, as it would disturb the suites running beside this one).
    @Test func differsEachTime() {
        let ids = (0..<10_000).map { _ in randomIdentifier() }
        #expect(Set(ids).count == ids.count)
    }
}
