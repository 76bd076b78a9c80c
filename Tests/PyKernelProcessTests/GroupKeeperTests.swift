import Foundation
import Glibc
import Logging
import Testing

@testable import PyKernelProcess

@Suite("the keeper that ends the children's groups with this process", .timeLimit(.minutes(5)))
struct GroupKeeperTests {
    /// `sh -c 'sleep M & sleep M'` in a group of its own, started as the service starts commands.
    private static func group(_ marker: String, dir: String, monitor: IOMonitor) async throws -> ChildProcess {
        try await ChildProcess.spawn(
            SpawnSpec(
                executable: "/bin/sh", arguments: ["sh", "-c", "sleep \(marker) & sleep \(marker); wait"],
                environment: ["PATH": "/usr/bin:/bin"], workingDirectory: dir, stdin: nil, stdout: nil, stderr: nil),
            monitor: monitor)
    }

    @Test("At the end of the socket the keeper kills every group listed, a new keeper is told them all, and forgotten groups live on")
    func endsTheGroupsListed() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let monitor = IOMonitor(logger: Logger(label: "test"))
        defer { monitor.stop() }
        let markers = (0..<4).map { "1021.\($0)\(Int.random(in: 100_000...999_999))" }
        var children: [ChildProcess] = []
        for marker in markers { children.append(try await Self.group(marker, dir: dir, monitor: monitor)) }
        defer { children.forEach { $0.release() } }
        let sleeps = { (index: Int) in liveProcesses(withCommandLine: ["sleep", markers[index]]).count }
        #expect(await eventually { (0..<4).allSatisfy { sleeps($0) == 2 } })
        let keeper = GroupKeeper()
        for child in children.prefix(3) { keeper.keep(child.pid) }
        keeper.forget(children[1].pid)
        // A keeper that died is replaced at the next group, and told every group still listed.
        let first = keeper.keeperPID
        #expect(first > 0)
        kill(first, SIGKILL)
        #expect(await eventually { (try? String(contentsOfFile: "/proc/\(first)/stat", encoding: .utf8))?.contains(") Z ") ?? false })
        keeper.keep(children[3].pid)
        #expect(keeper.keeperPID != first && keeper.keeperPID > 0)
        keeper.hangUp()
        #expect(await eventually { [0, 2, 3].allSatisfy { sleeps($0) == 0 } }, "a listed group outlived the keeper's socket")
        #expect(sleeps(1) == 2, "a forgotten group was killed")
        children[1].signalGroup(SIGKILL)
        #expect(await eventually { sleeps(1) == 0 })
        for child in children { _ = await child.exited.wait(timeout: 10) }
    }

    @Test("At the end of the socket the keeper removes every directory listed (spaces, newline-free), and a new keeper is told them; forgotten ones stay")
    func removesTheDirectoriesListed() async throws {
        let base = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let paths = ["a", "with space", "glob*[x]", "kept"].map { base + "/" + $0 }
        for path in paths {
            try FileManager.default.createDirectory(atPath: path + "/sessions/1", withIntermediateDirectories: true)
            #expect(FileManager.default.createFile(atPath: path + "/sessions/1/log", contents: Data("x".utf8)))
        }
        let keeper = GroupKeeper()
        #expect(!keeper.keepDirectory("relative/path"))
        #expect(!keeper.keepDirectory(base + "/new\nline"))
        #expect(keeper.keeperPID == 0, "a refused directory started a keeper")
        for path in paths.prefix(3) { #expect(keeper.keepDirectory(path)) }
        let first = keeper.keeperPID
        #expect(first > 0)
        kill(first, SIGKILL)
        #expect(await eventually { (try? String(contentsOfFile: "/proc/\(first)/stat", encoding: .utf8))?.contains(") Z ") ?? false })
        #expect(keeper.keepDirectory(paths[3]))
        keeper.forgetDirectory(paths[3])
        #expect(keeper.keeperPID != first && keeper.keeperPID > 0)
        keeper.hangUp()
        #expect(await eventually { paths.prefix(3).allSatisfy { !FileManager.default.fileExists(atPath: $0) } },
                "a listed directory outlived the keeper's socket")
        #expect(FileManager.default.fileExists(atPath: paths[3] + "/sessions/1/log"), "a forgotten directory was removed")
    }
}
