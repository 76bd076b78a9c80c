import Foundation
import Logging
import Synchronization
import Testing

@testable import PyKernelProcess

/// Keeps every record logged through it.
struct RecordingLogHandler: LogHandler {
    let records: LockedBox<[(level: Logger.Level, message: String, metadata: Logger.Metadata)]>
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        records.mutate { $0.append((event.level, event.message.description, event.metadata ?? [:])) }
    }
}

@Suite("bounded logs")
struct BoundedLogTests {
    @Test("a status line over 64 KiB is skipped and logged, and the lines after it still arrive")
    func overlongLine() async throws {
        let records = LockedBox<[(level: Logger.Level, message: String, metadata: Logger.Metadata)]>([])
        let logger = Logger(label: "test") { _ in RecordingLogHandler(records: records) }
        let monitor = IOMonitor(logger: logger)
        defer { monitor.stop() }
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let lines = LockedBox<[String]>([])
        let (ended, done) = AsyncStream.makeStream(of: Void.self)
        let reader = LineReader(fd: fds[0], monitor: monitor, logger: logger) { line in
            var count = 0
            lines.mutate { $0.append(line); count = $0.count }
            if count == 2 { done.yield(); done.finish() }
        }
        let long = [UInt8](repeating: UInt8(ascii: "x"), count: 70 * 1024)
        for piece in [Array("E 1 0\n".utf8) + long.prefix(40_000), Array(long.dropFirst(40_000)) + Array("\nE 2 7\n".utf8)] {
            piece.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count { offset += max(0, write(fds[1], bytes.baseAddress! + offset, bytes.count - offset)) }
            }
        }
        for await _ in ended { break }
        reader.stop()
        close(fds[1])
        #expect(lines.value == ["E 1 0", "E 2 7"])
        let warnings = records.value.filter { $0.level == .warning }
        #expect(warnings.count == 1)
        #expect(warnings.first?.metadata["bytes"] == "\(70 * 1024)")
    }

    @Test("a session log on disk keeps its head and its most recent bytes within the limit")
    func sessionLogCap() async throws {
        try await withService({ $0.sessionLogLimit = 4096 }) { service, _ in
            try await service.createSession(CreateSessionParams(id: "s"))
            let total = 6 + 100_000 + 1 + 4
            let command = try await service.executeSessionCommand(
                SessionExecuteParams(
                    session: "s", command: "echo start; head -c 100000 /dev/zero | tr '\\0' x; echo; echo end", runAsync: true))
            _ = try await service.sessionLogs(SessionLogsParams(session: "s", cmdId: command.cmdId, follow: true))
            // On disk: at most the limit per log.
            let root = try #require(service.temporaryRoot)
            let files = try FileManager.default.subpathsOfDirectory(atPath: root).filter {
                $0.contains("/stdout") && $0.hasSuffix(".log")
            }
            let stored = try files.map {
                try FileManager.default.attributesOfItem(atPath: root + "/" + $0)[.size] as? Int ?? 0
            }.reduce(0, +)
            #expect(stored <= 4096, "\(files)")
            // Results: the head, the tail, and the count of every byte missing between them.
            let logs = try await service.sessionLogs(SessionLogsParams(session: "s", cmdId: command.cmdId))
            #expect(logs.stdout.hasPrefix("start\nxxx"))
            #expect(logs.stdout.hasSuffix("xxx\nend\n"))
            #expect(logs.stdoutTruncated)
            #expect(logs.stdout.utf8.count + logs.stdoutOmittedBytes == total)
            #expect(logs.output.utf8.count + logs.outputOmittedBytes == total)
            // A follower that starts now is told what the log dropped, and reads the rest.
            var followed = 0
            var dropped = 0
            var text = ""
            for try await event in try await service.followSessionLogs(
                SessionLogsParams(session: "s", cmdId: command.cmdId, follow: true))
            {
                switch event {
                case .output(let chunk):
                    followed += chunk.text.utf8.count
                    text += chunk.text
                case .dropped(let stream, let bytes):
                    #expect(stream == .stdout)
                    dropped += bytes
                case .exited(let code): #expect(code == 0)
                }
            }
            #expect(dropped > 0)
            #expect(followed + dropped == total)
            #expect(text.hasPrefix("start\n") && text.hasSuffix("\nend\n"))
        }
    }

    /// A follow delivers a command's output in the order the server read it, from a capped log of
    /// the switches between stdout and stderr (16 bytes each). Past the switches it dropped, the
    /// bytes written meanwhile come one stream after the other, each once.
    @Test("a follower past the switches of streams that the capped order log dropped gets every byte once, in order where kept")
    func droppedSwitches() async throws {
        try await withService({ $0.sessionLogLimit = 4096 }) { service, _ in
            try await service.createSession(CreateSessionParams(id: "s"))
            let command = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "read line", runAsync: true))
            let stream = try await service.followSessionLogs(SessionLogsParams(session: "s", cmdId: command.cmdId, follow: true))
            // Each stream written 1000 times in turns, as the pump writes what it reads: 1999
            // switches, in a log that keeps its first 128 and at least its last 64.
            let written = (0..<2000).map { $0 % 2 == 0 ? "stdout o" : "stderr e" }
            for index in 0..<2000 {
                var text = index % 2 == 0 ? "o" : "e"
                text.withUTF8 { stream.command.logs.write(index % 2 == 0 ? .stdout : .stderr, UnsafeRawBufferPointer($0)) }
            }
            try await service.sendSessionInput(SessionInputParams(session: "s", cmdId: command.cmdId, data: "\n"))
            var runs: [(stream: OutputStreamName, text: String)] = []
            for try await event in stream {
                switch event {
                case .output(let chunk):
                    if runs.last?.stream == chunk.stream { runs[runs.count - 1].text += chunk.text } else { runs.append((chunk.stream, chunk.text)) }
                case .dropped(let stream, let bytes): Issue.record("\(bytes) bytes of \(stream) dropped")
                case .exited(let code): #expect(code == 0)
                }
            }
            let followed = runs.map { "\($0.stream) \($0.text)" }
            #expect(runs.filter { $0.stream == .stdout }.map(\.text).joined() == String(repeating: "o", count: 1000))
            #expect(runs.filter { $0.stream == .stderr }.map(\.text).joined() == String(repeating: "e", count: 1000))
            #expect(followed.count < written.count)
            #expect(Array(followed.prefix(128)) == Array(written.prefix(128)))
            #expect(Array(followed.suffix(64)) == Array(written.suffix(64)))
        }
    }

    /// A session command's logs were written as the bytes came and decoded when read: over the
    /// limit, invalid UTF-8 was kept as up to 3 times the limit of U+FFFD, counted in bytes as
    /// written. Its streams are now written as text, as every capped stream is.
    @Test("invalid UTF-8 over the limit: output is stdout, the limit bounds the text kept, kept plus omitted is its length")
    func invalidOutputOverTheLimit() async throws {
        try await withService({ $0.outputLimit = 1000 }) { service, _ in
            try await service.createSession(CreateSessionParams(id: "s"))
            let text = String(repeating: "\u{FFFD}", count: 3000) + String(repeating: "a\u{FFFD}", count: 700)
            let command = "head -c 3000 /dev/zero | tr '\\0' '\\377'; for i in $(seq 700); do printf 'a\\351'; done"
            let sync = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: command))
            let background = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: command, runAsync: true))
            let logs = try await service.sessionLogs(SessionLogsParams(session: "s", cmdId: background.cmdId, follow: true))
            let results: [(output: String?, stdout: String?, outputOmitted: Int?, stdoutOmitted: Int?)] = [
                (sync.output, sync.stdout, sync.outputOmittedBytes, sync.stdoutOmittedBytes),
                (logs.output, logs.stdout, logs.outputOmittedBytes, logs.stdoutOmittedBytes),
            ]
            for (output, stdout, outputOmitted, stdoutOmitted) in results {
                let stdout = try #require(stdout)
                #expect(output == stdout)
                #expect(outputOmitted == stdoutOmitted)
                #expect(stdout.utf8.count <= 1000, "\(stdout.utf8.count) bytes kept")
                #expect(stdout.utf8.count + (stdoutOmitted ?? 0) == text.utf8.count)
                #expect(text.hasPrefix(String(stdout.prefix(100))) && text.hasSuffix(String(stdout.suffix(100))))
            }
        }
    }
}
