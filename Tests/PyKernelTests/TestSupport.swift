import Foundation
import Logging
import PyKernel
import Synchronization
import Testing

// MARK: The one engine of the test process

/// CPython is initialized once per process and `KernelManager.start` may be called only once, so
/// every test shares this manager. Its working directory is a fresh temporary directory (so tests
/// of relative paths know what they resolve against). Descriptor capture stays off: it would take
/// over the test runner's own standard output. The run queue is kept small (``queueLimit``) so a
/// test can fill it; it is still far more than the shared tests queue at once.
enum Engine {
    static let queueLimit = 256

    /// The manager's working directory (absolute, symlinks resolved).
    static let root: String = {
        let base = realPath(NSTemporaryDirectory())
        let path = (base as NSString).appendingPathComponent("pykernel-tests-\(UUID().uuidString.lowercased())")
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    static let manager = Task { () async throws -> KernelManager in
        try await KernelManager.start(
            KernelConfiguration(workingDirectory: root, captureFileDescriptors: false, runQueueLimit: queueLimit),
            logger: Logger(label: "pykernel.engine.tests") { _ in EngineLog() })
    }
}

/// What the shared engine logged: each entry's level and message.
struct EngineLog: LogHandler {
    static let entries = Mutex<[(level: Logger.Level, message: String)]>([])

    /// The messages logged at `level`.
    static func messages(at level: Logger.Level) -> [String] {
        entries.withLock { $0.filter { $0.level == level }.map(\.message) }
    }

    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        Self.entries.withLock { $0.append((event.level, "\(event.message)")) }
    }
}

/// The shared manager, once started (for synchronous clean-up).
let startedManager = Mutex<KernelManager?>(nil)

/// The shared manager (started on first use).
func engine() async throws -> KernelManager {
    let manager = try await Engine.manager.value
    startedManager.withLock { $0 = manager }
    return manager
}

// MARK: Running code

/// Output of one stream, for comparisons (``OutputChunk`` has no public initializer).
struct Piece: Hashable, Sendable, CustomStringConvertible {
    let stream: OutputStreamName
    let text: String
    init(_ stream: OutputStreamName, _ text: String) {
        self.stream = stream
        self.text = text
    }
    init(_ chunk: OutputChunk) { self.init(chunk.stream, chunk.text) }
    var description: String { "\(stream): \(text.debugDescription)" }
}

/// Everything one run produced.
struct RunRecord: Sendable {
    var events: [ExecutionEvent]
    var result: ExecutionResult

    /// The output events, in order.
    var chunks: [OutputChunk] {
        events.compactMap { if case .output(let chunk) = $0 { chunk } else { nil } }
    }

    /// The concatenated text of the output events of one stream.
    func text(_ stream: OutputStreamName) -> String {
        chunks.filter { $0.stream == stream }.map(\.text).joined()
    }

    /// The output events with consecutive chunks of one stream merged: the order in which the
    /// streams were written.
    var mergedChunks: [Piece] {
        var merged: [Piece] = []
        for chunk in chunks {
            if let last = merged.last, last.stream == chunk.stream {
                merged[merged.count - 1] = Piece(last.stream, last.text + chunk.text)
            } else {
                merged.append(Piece(chunk.stream, chunk.text))
            }
        }
        return merged
    }

    var error: ErrorRecord? { result.error }

    /// The rich-result events, in order.
    var results: [RichResult] {
        events.compactMap { if case .result(let result) = $0 { result } else { nil } }
    }
}

/// Runs `code` and collects every event; requires the last event to be the result, and no event
/// after it.
@discardableResult
func run(
    _ code: String, in context: ContextID, environment: [String: String] = [:],
    timeout: Duration? = .seconds(60), outputLimit: Int = 1 << 20,
    sourceLocation: SourceLocation = #_sourceLocation
) async throws -> RunRecord {
    let manager = try await engine()
    let execution = try manager.run(code, in: context, environment: environment, timeout: timeout, outputLimit: outputLimit)
    return try await collect(execution, sourceLocation: sourceLocation)
}

/// Collects the events of a run; requires exactly one `.completed` event, at the end.
func collect(_ execution: Execution, sourceLocation: SourceLocation = #_sourceLocation) async throws -> RunRecord {
    var events: [ExecutionEvent] = []
    for try await event in execution { events.append(event) }
    let completions = events.filter { if case .completed = $0 { true } else { false } }
    try #require(completions.count == 1, "a run ends with exactly one result", sourceLocation: sourceLocation)
    guard case .completed(let result) = events.last else {
        Issue.record("the result is not the last event: \(events)", sourceLocation: sourceLocation)
        throw CancellationError()
    }
    return RunRecord(events: events, result: result)
}

/// Runs `code`, requiring it to end with status `ok`; returns its stdout.
@discardableResult
func runOK(_ code: String, in context: ContextID, sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
    let record = try await run(code, in: context, sourceLocation: sourceLocation)
    #expect(record.result.status == .ok, "\(code) -> \(String(describing: record.result.error))", sourceLocation: sourceLocation)
    #expect(record.result.error == nil, sourceLocation: sourceLocation)
    return record.result.stdout
}

/// A new context (optionally with a working directory).
func newContext(cwd: String? = nil) async throws -> ContextID {
    try await engine().createContext(cwd: cwd).id
}

/// Deletes contexts made by a test, at once (ignoring contexts already deleted), so that nothing
/// of theirs outlives the test.
func discard(_ contexts: ContextID...) { discard(contexts) }

func discard(_ contexts: [ContextID]) {
    guard let manager = startedManager.withLock({ $0 }) else { return }
    for context in contexts { try? manager.deleteContext(context) }
}

/// Waits until the run's first output event has arrived (proof that its code is running), and
/// returns it. The iterator keeps the rest of the events.
func firstOutput(of iterator: Execution.Iterator) async throws -> OutputChunk {
    while let event = try await iterator.next() {
        switch event {
        case .output(let chunk): return chunk
        case .result, .inputRequest: continue
        case .completed(let result):
            Issue.record("the run ended before it printed anything: \(result)")
            throw CancellationError()
        }
    }
    Issue.record("the run's events ended without a result")
    throw CancellationError()
}

/// Reads the remaining events of an iterator up to the result.
func remainingEvents(of iterator: Execution.Iterator) async throws -> RunRecord {
    var events: [ExecutionEvent] = []
    while let event = try await iterator.next() { events.append(event) }
    guard case .completed(let result) = events.last else {
        Issue.record("the events ended without a result: \(events)")
        throw CancellationError()
    }
    return RunRecord(events: events, result: result)
}

/// Expects `body` to throw a ``KernelError`` with `code`.
func expectKernelError<T>(
    _ code: KernelError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T
) async {
    do {
        let value = try await body()
        Issue.record("expected KernelError \(code), got \(value)", sourceLocation: sourceLocation)
    } catch let error as KernelError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected KernelError \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

// MARK: Files and memory

func realPath(_ path: String) -> String {
    guard let resolved = realpath(path, nil) else { return path }
    defer { free(resolved) }
    return String(cString: resolved)
}

/// A new empty directory (absolute, symlinks resolved).
func makeTemporaryDirectory() throws -> String {
    let path = (Engine.root as NSString).appendingPathComponent("dir-\(UUID().uuidString.lowercased())")
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A name no other test uses (for process-wide things: environment variables, `builtins` attributes).
func uniqueName(_ prefix: String) -> String {
    "\(prefix)_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12))"
}

/// The process's resident set size in bytes (`VmRSS` of /proc/self/status).
func residentBytes() throws -> Int {
    let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
    let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
    let kilobytes = try #require(Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" })[1]))
    return kilobytes * 1024
}

let megabyte = 1 << 20

// MARK: Isolation of the memory and timing-sensitive tests

/// A readers-writer gate over the whole engine: ordinary tests share it (they run in parallel,
/// each in its own contexts); tests that measure the process's memory, or that need the
/// interpreter to be idle between two of their runs, take it alone. Waiting writers go first.
actor EngineGate {
    static let shared = EngineGate()

    private var readers = 0
    private var writing = false
    private var waitingWriters: [CheckedContinuation<Void, Never>] = []
    private var waitingReaders: [CheckedContinuation<Void, Never>] = []

    func acquire(exclusive: Bool) async {
        if exclusive {
            if !writing && readers == 0 {
                writing = true
                return
            }
            await withCheckedContinuation { waitingWriters.append($0) }  // `writing` set by the releaser
        } else {
            if !writing && waitingWriters.isEmpty {
                readers += 1
                return
            }
            await withCheckedContinuation { waitingReaders.append($0) }  // counted by the releaser
        }
    }

    func release(exclusive: Bool) {
        if exclusive {
            writing = false
        } else {
            readers -= 1
        }
        guard !writing, readers == 0 else { return }
        if !waitingWriters.isEmpty {
            writing = true
            waitingWriters.removeFirst().resume()
        } else {
            readers += waitingReaders.count
            for reader in waitingReaders { reader.resume() }
            waitingReaders = []
        }
    }
}

/// Runs each test of a suite (or a test) holding the ``EngineGate``: shared, or alone.
struct EngineAccess: TestTrait, SuiteTrait, TestScoping {
    let exclusive: Bool

    var isRecursive: Bool { true }

    func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
        test.isSuite || testCase == nil ? nil : self
    }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        await EngineGate.shared.acquire(exclusive: exclusive)
        do {
            try await function()
        } catch {
            await EngineGate.shared.release(exclusive: exclusive)
            throw error
        }
        await EngineGate.shared.release(exclusive: exclusive)
    }
}

extension Trait where Self == EngineAccess {
    /// The test runs alongside others, in contexts of its own.
    static var sharedEngine: EngineAccess { EngineAccess(exclusive: false) }
    /// No other test runs meanwhile (memory measurements, output between runs).
    static var exclusiveEngine: EngineAccess { EngineAccess(exclusive: true) }
}
