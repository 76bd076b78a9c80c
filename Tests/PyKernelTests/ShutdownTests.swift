import Foundation
import PyKernel
import Testing

@Suite("KernelManager after shutdown")
struct KernelManagerShutdownTests {
    /// Set for the child process that runs ``afterShutdown()`` (shutting the engine down ends it
    /// for every other test of a process).
    static let childVariable = "PYKERNEL_TESTS_MANAGER_SHUTDOWN_CHILD"

    /// The calls the child makes after the shutdown, in order.
    static let calls = ["run", "createContext", "interrupt", "deleteContext"]

    @Test("After shutdown, creating, interrupting and deleting a context throw shutting_down as a run does (in a process of its own)")
    func afterShutdownInAChildProcess() async throws {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["--testing-library", "swift-testing", "--filter", "KernelManagerShutdownTests/afterShutdown\\(\\)"]
        child.environment = ProcessInfo.processInfo.environment.merging([Self.childVariable: "1"]) { _, new in new }
        let output = Pipe()
        child.standardOutput = output
        child.standardError = FileHandle.nullDevice
        try child.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        child.waitUntilExit()
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("after shutdown: ") }
        #expect(lines.count == 1, "the child printed no verdict: \(text.suffix(2000))")
        #expect(lines.first == "after shutdown: " + Self.calls.map { "\($0)=shutting_down" }.joined(separator: " "))
        #expect(child.terminationStatus == 0, "\(text.suffix(2000))")
    }

    @Test("(the child process of the test above)", .enabled(if: ProcessInfo.processInfo.environment[childVariable] == "1"))
    func afterShutdown() async throws {
        let manager = try await engine()
        let context = try manager.createContext()
        #expect(try await manager.run("1", in: context.id).result().status == .ok)
        manager.shutdown()
        var codes: [String] = []
        func note(_ call: String, _ body: () throws(KernelError) -> Void) {
            do throws(KernelError) {
                try body()
                codes.append("\(call)=ok")
            } catch {
                codes.append("\(call)=\(error.code)")
            }
        }
        note("run") { () throws(KernelError) in _ = try manager.run("1", in: context.id) }
        note("createContext") { () throws(KernelError) in _ = try manager.createContext() }
        note("interrupt") { () throws(KernelError) in _ = try manager.interrupt(context.id) }
        note("deleteContext") { () throws(KernelError) in try manager.deleteContext(context.id) }
        print("after shutdown: " + codes.joined(separator: " "))
        #expect(codes.allSatisfy { $0.hasSuffix("=shutting_down") })
    }
}
