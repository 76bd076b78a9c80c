import Foundation
import Testing
import _PyKernelProcessShims
@testable import PyKernelIsolation

@Suite("Worker processes inherit only their own descriptors", .timeLimit(.minutes(1)))
struct WorkerSpawnTests {
    @Test("A spawned worker (or fork server) has descriptors 0, 1 and 2 only, whatever else its host has open")
    func onlyTheGivenDescriptors() throws {
        // A host's descriptor without close-on-exec, like a pipe another library opened.
        var stray: [Int32] = [-1, -1]
        #expect(pipe(&stray) == 0)
        defer { close(stray[0]); close(stray[1]) }
        var output: [Int32] = [-1, -1]
        #expect(pk_pipe_cloexec(&output) == 0)
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(null) }

        let pid = try Worker.spawn("/bin/sh", ["-c", "ls /proc/$$/fd"], descriptors: [null, output[1], null])
        close(output[1])
        var listing = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(output[0], &buffer, buffer.count)
            if count <= 0 { break }
            listing.append(contentsOf: buffer[0..<count])
        }
        close(output[0])
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        let descriptors = String(decoding: listing, as: UTF8.self).split(separator: "\n").map(String.init)
        #expect(Set(descriptors) == ["0", "1", "2"], "the worker had \(descriptors) open")
    }
}
