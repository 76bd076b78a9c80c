import Foundation
import Glibc
import Testing

@testable import PyKernelProcess

/// A fresh working directory for one test.
func makeTemporaryDirectory() -> String {
    var template = Array("/tmp/pykernel-process-tests-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: made!)
}

/// Runs `body` with a service whose working directory is a fresh temporary directory, and
/// shuts the service down afterwards (even when `body` throws).
func withService<T>(
    _ configure: (inout ProcessServiceConfiguration) -> Void = { _ in },
    _ body: (ProcessService, String) async throws -> T
) async throws -> T {
    let dir = makeTemporaryDirectory()
    var configuration = ProcessServiceConfiguration(workingDirectory: dir)
    configure(&configuration)
    let service = try ProcessService(configuration: configuration)
    do {
        let result = try await body(service, dir)
        await service.shutdown()
        try? FileManager.default.removeItem(atPath: dir)
        return result
    } catch {
        await service.shutdown()
        try? FileManager.default.removeItem(atPath: dir)
        throw error
    }
}

/// Whether the process exists and is not a zombie.
func isAlive(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
    return state != "Z" && state != "X"
}

/// Live processes whose command line is exactly `words` (e.g. ["sleep", "1001"]).
func liveProcesses(withCommandLine words: [String]) -> [Int32] {
    let wanted = words.joined(separator: "\0") + "\0"
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
            String(decoding: data, as: UTF8.self) == wanted
        else { return false }
        return isAlive(pid)
    }
}

/// Waits up to `timeout` seconds for `condition` (it returns as soon as the condition holds: the
/// default is for a loaded machine, where starting a process has taken seconds).
func eventually(timeout: Double = 30, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        try? await Task.sleep(nanoseconds: 20_000_000)
    }
    return condition()
}

/// The resident set size of this process, in bytes.
func residentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let digits = line.filter(\.isNumber)
        return (Int(digits) ?? 0) * 1024
    }
    return 0
}

/// Expects `body` to throw a ``ProcessAPIError`` with `code`; returns it.
@discardableResult
func expectAPIError<T>(
    _ code: ProcessAPIError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T
) async -> ProcessAPIError? {
    do {
        _ = try await body()
        Issue.record("expected \(code), but the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as ProcessAPIError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected ProcessAPIError \(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Collects a followed command's output and exit code, with the time the first output arrived.
struct FollowedLogs {
    var stdout = ""
    var stderr = ""
    var exitCode: Int32?
    var firstOutputAt: Date?
    var exitedAt: Date?
    /// Whether the command was still running (no exit code) when the first output arrived.
    var runningAtFirstOutput: Bool?
    var outputEvents = 0
}

func follow(_ service: ProcessService, session: String, cmdId: String) async throws -> FollowedLogs {
    var logs = FollowedLogs()
    for try await event in try await service.followSessionLogs(SessionLogsParams(session: session, cmdId: cmdId, follow: true)) {
        switch event {
        case .output(let chunk):
            logs.outputEvents += 1
            if logs.firstOutputAt == nil {
                logs.firstOutputAt = Date()
                let info = try await service.getSessionCommand(SessionCommandParams(session: session, cmdId: cmdId))
                logs.runningAtFirstOutput = info.exitCode == nil
            }
            if chunk.stream == .stdout { logs.stdout += chunk.text } else { logs.stderr += chunk.text }
        case .dropped(let stream, let bytes):
            Issue.record("\(bytes) bytes of \(stream) dropped from a log")
        case .exited(let code):
            logs.exitCode = code
            logs.exitedAt = Date()
        }
    }
    return logs
}

/// The ignored signals among 1...31 in the `SigIgn:` line of a /proc status (all bits set without one).
/// glibc's internal signals 32 and 33 are left out: swift-subprocess resets dispositions with
/// glibc's `sigfillset`, which excludes them, so glibc's `posix_spawn` leaves them ignored; glibc
/// programs install their own handlers for them.
func ignoredStandardSignals(_ status: String) -> UInt64 {
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigIgn:") }),
        let mask = UInt64(line.dropFirst("SigIgn:".count).trimmingCharacters(in: .whitespaces), radix: 16)
    else { return UInt64.max }
    return mask & 0x7FFF_FFFF
}
